//! Per-call inspection options: thresholds, minimum region area, segment rule, a vocabulary subset and the outputs
//! to keep, for one call instead of a new engine. Also what `loupe_result_rethreshold` takes.

use std::ffi::c_char;

use loupe_sdk::{InspectOptions, SegmentRule};

use crate::args;
use crate::status::{FfiError, LoupeStatus};

/// `LoupeInspectOptions.set` bit: use `image_threshold`.
pub const LOUPE_OPTION_IMAGE_THRESHOLD: u32 = 1;
/// `LoupeInspectOptions.set` bit: use `pixel_threshold`.
pub const LOUPE_OPTION_PIXEL_THRESHOLD: u32 = 1 << 1;
/// `LoupeInspectOptions.set` bit: use `min_region_area`.
pub const LOUPE_OPTION_MIN_REGION_AREA: u32 = 1 << 2;
/// `LoupeInspectOptions.set` bit: use `segment`.
pub const LOUPE_OPTION_SEGMENT: u32 = 1 << 3;
/// `LoupeInspectOptions.set` bit: use `classes` / `class_count`.
pub const LOUPE_OPTION_CLASSES: u32 = 1 << 4;

/// `LoupeInspectOptions.segment`: only images labelled anomalous get a mask and regions (the default of
/// `postprocess.segment`): the label and the regions never contradict each other.
pub const LOUPE_SEGMENT_ANOMALOUS: u32 = 1;
/// `LoupeInspectOptions.segment`: every image gets a mask and regions from the pixel threshold, whatever its label
/// (two independent thresholds; what pixel-level benchmarks score).
pub const LOUPE_SEGMENT_ALL: u32 = 2;

/// `LoupeInspectOptions.skip` bit: free the float anomaly map (and per-class maps) once the mask and regions are
/// made; `loupe_result_anomaly_map` then fails, and the result cannot be re-thresholded.
pub const LOUPE_SKIP_ANOMALY_MAP: u32 = 1;
/// `LoupeInspectOptions.skip` bit: free the type map once regions are made (regions keep their types);
/// `loupe_result_type_map` then fails, and the result cannot be re-thresholded.
pub const LOUPE_SKIP_TYPE_MAP: u32 = 1 << 1;

/// Options of one inspection (`loupe_session_inspect_ex`, `loupe_session_inspect_batch_ex`,
/// `loupe_session_inspect_with_profile_ex`) or of a re-thresholding (`loupe_result_rethreshold`).
/// Zero-initialise it, set `struct_size` to `sizeof(LoupeInspectOptions)`, then set the fields wanted and their
/// bits in `set`: a field whose bit is clear means the engine's configuration (or the profile's calibration), so a
/// zeroed struct changes nothing. Fields may be appended in later versions.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LoupeInspectOptions {
    /// `sizeof(LoupeInspectOptions)`.
    pub struct_size: u32,
    /// Which fields below are given: `LOUPE_OPTION_*` bits.
    pub set: u32,
    /// Image-score threshold, on the scale of the result's scoring mode (`loupe_result_thresholds`).
    pub image_threshold: f32,
    /// Anomaly-map threshold, on the scale of the map (`loupe_result_map_range`).
    pub pixel_threshold: f32,
    /// Smallest region kept, in pixels (at least 1).
    pub min_region_area: u32,
    /// `LOUPE_SEGMENT_ANOMALOUS` or `LOUPE_SEGMENT_ALL`.
    pub segment: u32,
    /// Defect words to look for, a subset of the engine's (or the profile's) vocabulary, UTF-8; read during the
    /// call only. The result's classes are `normal` and these, in this order.
    pub classes: *const *const c_char,
    /// Number of entries of `classes` (at least 1).
    pub class_count: usize,
    /// Outputs to free after the call: `LOUPE_SKIP_*` bits (0 keeps all).
    pub skip: u32,
}

impl Default for LoupeInspectOptions {
    /// A zeroed struct of this version (`struct_size` set): the engine's configuration.
    fn default() -> Self {
        Self {
            struct_size: size_of::<Self>() as u32,
            set: 0,
            image_threshold: 0.0,
            pixel_threshold: 0.0,
            min_region_area: 0,
            segment: 0,
            classes: std::ptr::null(),
            class_count: 0,
            skip: 0,
        }
    }
}

/// `sizeof(LoupeInspectOptions)` in this version (C API 3, the struct's first): the least `struct_size` accepted.
/// A later version that appends fields will still accept this size and default the new fields.
const OPTIONS_V3_SIZE: usize = size_of::<LoupeInspectOptions>();

/// Every `LOUPE_OPTION_*` bit.
const ALL_OPTIONS: u32 = LOUPE_OPTION_IMAGE_THRESHOLD
    | LOUPE_OPTION_PIXEL_THRESHOLD
    | LOUPE_OPTION_MIN_REGION_AREA
    | LOUPE_OPTION_SEGMENT
    | LOUPE_OPTION_CLASSES;

/// Reads the caller's options (NULL: the defaults), checking `struct_size` first and every field it covers.
///
/// # Safety
/// `options` is NULL or points to a `LoupeInspectOptions` whose first `struct_size` bytes are readable, and whose
/// `classes` (when its bit is set) points to `class_count` NUL-terminated strings.
pub(crate) unsafe fn read(options: *const LoupeInspectOptions) -> Result<InspectOptions, FfiError> {
    if options.is_null() {
        return Ok(InspectOptions::default());
    }
    // SAFETY: non-NULL, `struct_size` readable by the contract. The fields are read one by one through raw
    // pointers, after the size check, as an older caller's struct may be shorter.
    let size = unsafe { std::ptr::addr_of!((*options).struct_size).read() } as usize;
    let bad = |field: &str, expected: &str, found: String| {
        FfiError::new(LoupeStatus::InvalidArgument, format!("`options->{field}`: expected {expected}, found {found}"))
    };
    if size < OPTIONS_V3_SIZE {
        return Err(bad(
            "struct_size",
            &format!("sizeof(LoupeInspectOptions) (at least {OPTIONS_V3_SIZE})"),
            size.to_string(),
        ));
    }
    // SAFETY: the whole version-3 struct lies within `struct_size` bytes, checked above.
    let o = unsafe { options.read_unaligned() };
    if o.set & !ALL_OPTIONS != 0 {
        return Err(bad("set", "LOUPE_OPTION_* bits", format!("{:#x}", o.set)));
    }
    if o.skip & !(LOUPE_SKIP_ANOMALY_MAP | LOUPE_SKIP_TYPE_MAP) != 0 {
        return Err(bad("skip", "LOUPE_SKIP_* bits", format!("{:#x}", o.skip)));
    }
    let given = |bit: u32| o.set & bit != 0;
    let threshold = |bit: u32, value: f32, field: &str| -> Result<Option<f32>, FfiError> {
        match given(bit) {
            false => Ok(None),
            true if value.is_finite() => Ok(Some(value)),
            true => Err(bad(field, "a finite number", value.to_string())),
        }
    };
    let segment = match (given(LOUPE_OPTION_SEGMENT), o.segment) {
        (false, _) => None,
        (true, LOUPE_SEGMENT_ANOMALOUS) => Some(SegmentRule::Anomalous),
        (true, LOUPE_SEGMENT_ALL) => Some(SegmentRule::All),
        (true, other) => {
            return Err(bad("segment", "LOUPE_SEGMENT_ANOMALOUS (1) or LOUPE_SEGMENT_ALL (2)", other.to_string()));
        }
    };
    let min_region_area = match (given(LOUPE_OPTION_MIN_REGION_AREA), o.min_region_area) {
        (false, _) => None,
        (true, 0) => return Err(bad("min_region_area", "at least 1 pixel", "0".into())),
        (true, area) => Some(area),
    };
    let classes = if given(LOUPE_OPTION_CLASSES) {
        if o.class_count == 0 {
            return Err(bad("class_count", "at least 1 defect word", "0".into()));
        }
        if o.classes.is_null() {
            return Err(FfiError::null("options->classes"));
        }
        // SAFETY: `class_count` pointers by the contract.
        let words = unsafe { std::slice::from_raw_parts(o.classes, o.class_count) };
        let words = words
            .iter()
            .enumerate()
            // SAFETY: each entry is NULL or a NUL-terminated string by the contract.
            .map(|(i, &w)| unsafe { args::text(w, &format!("options->classes[{i}]")) }.map(str::to_string))
            .collect::<Result<Vec<String>, FfiError>>()?;
        Some(words)
    } else {
        None
    };
    Ok(InspectOptions {
        image_threshold: threshold(LOUPE_OPTION_IMAGE_THRESHOLD, o.image_threshold, "image_threshold")?,
        pixel_threshold: threshold(LOUPE_OPTION_PIXEL_THRESHOLD, o.pixel_threshold, "pixel_threshold")?,
        min_region_area,
        segment,
        classes,
        keep_anomaly_map: o.skip & LOUPE_SKIP_ANOMALY_MAP == 0,
        keep_type_map: o.skip & LOUPE_SKIP_TYPE_MAP == 0,
    })
}

/// The `LOUPE_SEGMENT_*` of a rule.
pub(crate) fn segment_code(rule: SegmentRule) -> u32 {
    match rule {
        SegmentRule::Anomalous => LOUPE_SEGMENT_ANOMALOUS,
        SegmentRule::All => LOUPE_SEGMENT_ALL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zeroed_struct_and_null_are_the_defaults() {
        assert_eq!(unsafe { read(std::ptr::null()) }.unwrap(), InspectOptions::default());
        assert_eq!(unsafe { read(&LoupeInspectOptions::default()) }.unwrap(), InspectOptions::default());
    }

    #[test]
    fn set_fields_are_read_and_checked() {
        let words = [c"hole".as_ptr(), c"crack".as_ptr()];
        let o = LoupeInspectOptions {
            set: ALL_OPTIONS,
            image_threshold: 0.25,
            pixel_threshold: 1.5,
            min_region_area: 9,
            segment: LOUPE_SEGMENT_ALL,
            classes: words.as_ptr(),
            class_count: 2,
            skip: LOUPE_SKIP_TYPE_MAP,
            ..LoupeInspectOptions::default()
        };
        let r = unsafe { read(&o) }.unwrap();
        assert_eq!((r.image_threshold, r.pixel_threshold, r.min_region_area), (Some(0.25), Some(1.5), Some(9)));
        assert_eq!(r.segment, Some(SegmentRule::All));
        assert_eq!(r.classes, Some(vec!["hole".to_string(), "crack".to_string()]));
        assert!(r.keep_anomaly_map && !r.keep_type_map);
        let err = |o: LoupeInspectOptions| unsafe { read(&o) }.unwrap_err();
        let e = err(LoupeInspectOptions { struct_size: 8, ..o });
        assert!(e.message.contains("struct_size") && e.message.contains("found 8"), "{}", e.message);
        let e = err(LoupeInspectOptions { segment: 7, ..o });
        assert!(e.message.contains("options->segment") && e.message.contains("found 7"), "{}", e.message);
        let e = err(LoupeInspectOptions { pixel_threshold: f32::NAN, ..o });
        assert!(e.message.contains("pixel_threshold"), "{}", e.message);
        let e = err(LoupeInspectOptions { min_region_area: 0, ..o });
        assert!(e.message.contains("min_region_area"), "{}", e.message);
        let e = err(LoupeInspectOptions { classes: std::ptr::null(), ..o });
        assert_eq!(e.status, LoupeStatus::NullArgument);
        let e = err(LoupeInspectOptions { set: 1 << 9, ..o });
        assert!(e.message.contains("options->set"), "{}", e.message);
        let e = err(LoupeInspectOptions { skip: 4, ..o });
        assert!(e.message.contains("options->skip"), "{}", e.message);
        // A value whose bit is clear is not read: NaN there is fine.
        let r = unsafe { read(&LoupeInspectOptions { set: 0, pixel_threshold: f32::NAN, ..o }) }.unwrap();
        assert_eq!(r.pixel_threshold, None);
    }
}
