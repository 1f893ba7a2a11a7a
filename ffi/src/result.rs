//! Results: one inspected image, read through accessors, released by the caller with `loupe_result_destroy`.

use std::ffi::{CString, c_char};

use loupe_sdk::report::ImageReport;
use loupe_sdk::{ComponentInfo, Detection, ScoringMode, render};

use crate::args;
use crate::engine::c_string;
use crate::guard::guard;
use crate::handles::{self, Object};
use crate::image::LoupeImageView;
use crate::options::{self, LoupeInspectOptions};
use crate::status::{FfiError, LoupeStatus};

/// The result of inspecting one image. Opaque; read with the `loupe_result_*` accessors, release with
/// `loupe_result_destroy`. Immutable: any number of threads may read one result at the same time.
pub struct LoupeResult {
    _private: [u8; 0],
}

/// A connected region of the mask, in output-map pixels.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LoupeRegion {
    /// Left edge of the bounding box.
    pub x: u32,
    /// Top edge of the bounding box.
    pub y: u32,
    /// Width of the bounding box.
    pub width: u32,
    /// Height of the bounding box.
    pub height: u32,
    /// Number of pixels in the region.
    pub area: u32,
    /// Most frequent defect type of its pixels: an index into the result's classes
    /// (`loupe_result_class_name`); never 0 (`normal`). `UINT32_MAX`, with a NULL `type_name`, if a component
    /// reported a type outside the classes.
    pub type_index: u32,
    /// Name of that type; owned by the result (valid until `loupe_result_destroy`).
    pub type_name: *const c_char,
    /// Mean anomaly score over the region.
    pub mean_score: f32,
    /// Largest anomaly score in the region.
    pub max_score: f32,
}

/// Scoring mode of a result: text evidence only (DAPO as published; also while a mutual window fills).
pub const LOUPE_MODE_TEXT: u32 = 0;
/// Scoring mode of a result: against the golden samples (reference images) of a profile.
pub const LOUPE_MODE_GOLDEN: u32 = 1;
/// Scoring mode of a result: against other images (the other images of a batch, or a session's window).
pub const LOUPE_MODE_MUTUAL: u32 = 2;

/// What a result's score rests on, copied out by `loupe_result_evidence`. Set `struct_size` to
/// `sizeof(LoupeEvidence)` before the call: fields may be appended in later versions, and the library writes only
/// the fields that fit in `struct_size`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LoupeEvidence {
    /// Set by the caller to `sizeof(LoupeEvidence)`; never written by Loupe.
    pub struct_size: u32,
    /// `LOUPE_MODE_TEXT`, `LOUPE_MODE_GOLDEN` or `LOUPE_MODE_MUTUAL`.
    pub mode: u32,
    /// The text evidence's image score (what the score is in text mode).
    pub text_score: f32,
    /// The reference evidence's normalised image score (0.5 at the edge of normal variation); NaN in text mode.
    pub reference_score: f32,
    /// Reference images (golden) or other images (mutual) compared with; 0 in text mode.
    pub pool: u32,
    /// True when mutual scoring was on but the session's window held fewer than `reference.mutual_min_pool`
    /// images: the result is text only (mode `LOUPE_MODE_TEXT`), and the image joined the window.
    pub window_filling: bool,
}

/// Bytes of `LoupeEvidence` up to the end of its last field in this version: the least `struct_size` accepted.
const EVIDENCE_V2_SIZE: usize = std::mem::offset_of!(LoupeEvidence, window_filling) + size_of::<bool>();

/// The `LOUPE_MODE_*` of a scoring mode.
fn mode_code(mode: ScoringMode) -> u32 {
    match mode {
        ScoringMode::Text => LOUPE_MODE_TEXT,
        ScoringMode::Golden => LOUPE_MODE_GOLDEN,
        ScoringMode::Mutual => LOUPE_MODE_MUTUAL,
    }
}

/// What a result handle refers to: the detection and C copies of its strings.
pub(crate) struct ResultData {
    pub(crate) detection: Detection,
    class_names: Vec<CString>,
    image_type: CString,
    /// Index into the classes of each region's type.
    region_types: Vec<u32>,
    /// The engine's backbone, prompt bank and post-processor, for the JSON.
    components: [ComponentInfo; 3],
}

impl ResultData {
    pub(crate) fn new(detection: Detection, components: [ComponentInfo; 3]) -> Self {
        let class_names = detection.classes.iter().map(|c| c_string(c)).collect();
        let image_type = c_string(&detection.image_type);
        let region_types = detection
            .regions
            .iter()
            .map(|r| detection.classes.iter().position(|c| *c == r.defect_type).map_or(u32::MAX, |i| i as u32))
            .collect();
        Self { detection, class_names, image_type, region_types, components }
    }
}

/// Looks up the result and runs `read` on it; every accessor below is this plus writing its outputs.
fn read(result: *const LoupeResult, read: impl FnOnce(&ResultData) -> Result<(), FfiError>) -> Result<(), FfiError> {
    let data = handles::result(result, "result")?;
    read(&data)
}

/// Destroys a result; pointers obtained from its accessors become invalid. NULL is accepted and does nothing; a
/// handle that is not a live result gives `LOUPE_STATUS_INVALID_HANDLE`.
///
/// Thread-safety: safe from any thread, but the pointers the accessors returned (maps, names) die with the
/// result: no thread may still be reading them.
///
/// # Safety
/// None beyond passing a value received from Loupe (any value is checked).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_result_destroy(result: *mut LoupeResult) -> LoupeStatus {
    guard(|| handles::remove(result, "result", handles::result))
}

/// The image anomaly score (raw): in [0, 1] for text-only results and the `mean`, `harmonic` and `reference`
/// fusions, [0, 3] for `layer_sum`. Compare it with the image threshold (`loupe_result_thresholds`), or read
/// `loupe_result_normalized_score` for a scale that is the same in every mode.
///
/// Thread-safety: safe from any thread.
///
/// # Safety
/// `out_score` is NULL or valid for writing a `float`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_result_score(result: *const LoupeResult, out_score: *mut f32) -> LoupeStatus {
    guard(|| {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { args::out(out_score, "out_score", 0.0) }?;
        read(result, |r| {
            *out = r.detection.score;
            Ok(())
        })
    })
}

/// The label: true when the score is above the image threshold (the image is anomalous).
///
/// Thread-safety: safe from any thread.
///
/// # Safety
/// `out_anomalous` is NULL or valid for writing a `bool`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_result_is_anomalous(
    result: *const LoupeResult,
    out_anomalous: *mut bool,
) -> LoupeStatus {
    guard(|| {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { args::out(out_anomalous, "out_anomalous", false) }?;
        read(result, |r| {
            *out = r.detection.is_anomalous;
            Ok(())
        })
    })
}

/// The thresholds the result was computed with: image score and anomaly-map value.
///
/// Thread-safety: safe from any thread.
///
/// # Safety
/// `out_image` and `out_pixel` are NULL or valid for writing a `float`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_result_thresholds(
    result: *const LoupeResult,
    out_image: *mut f32,
    out_pixel: *mut f32,
) -> LoupeStatus {
    guard(|| {
        // SAFETY: forwarded from this function's contract.
        let image = unsafe { args::out(out_image, "out_image", 0.0) }?;
        // SAFETY: as above.
        let pixel = unsafe { args::out(out_pixel, "out_pixel", 0.0) }?;
        read(result, |r| {
            *image = r.detection.thresholds.image;
            *pixel = r.detection.thresholds.pixel;
            Ok(())
        })
    })
}

/// The image-level defect type: the most probable defect word for the whole image (reported whether or not the
/// image is anomalous). The string is owned by the result: valid until `loupe_result_destroy`.
///
/// Thread-safety: safe from any thread.
///
/// # Safety
/// `out_name` is NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_result_image_type(
    result: *const LoupeResult,
    out_name: *mut *const c_char,
) -> LoupeStatus {
    guard(|| {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { args::out(out_name, "out_name", std::ptr::null()) }?;
        read(result, |r| {
            // The result lives in the registry beyond this call: the pointer stays valid until it is destroyed.
            *out = r.image_type.as_ptr();
            Ok(())
        })
    })
}

/// The number of classes: `normal` (index 0) plus each defect word.
///
/// Thread-safety: safe from any thread.
///
/// # Safety
/// `out_count` is NULL or valid for writing a `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_result_class_count(result: *const LoupeResult, out_count: *mut usize) -> LoupeStatus {
    guard(|| {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { args::out(out_count, "out_count", 0) }?;
        read(result, |r| {
            *out = r.class_names.len();
            Ok(())
        })
    })
}

/// The name of class `index`; owned by the result (valid until `loupe_result_destroy`).
///
/// Thread-safety: safe from any thread.
///
/// # Safety
/// `out_name` is NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_result_class_name(
    result: *const LoupeResult,
    index: usize,
    out_name: *mut *const c_char,
) -> LoupeStatus {
    guard(|| {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { args::out(out_name, "out_name", std::ptr::null()) }?;
        read(result, |r| {
            let i = args::index(index, r.class_names.len(), "index")?;
            *out = r.class_names[i].as_ptr();
            Ok(())
        })
    })
}

/// The image-level probability of class `index` (the probabilities of all classes sum to 1).
///
/// Thread-safety: safe from any thread.
///
/// # Safety
/// `out_probability` is NULL or valid for writing a `float`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_result_class_probability(
    result: *const LoupeResult,
    index: usize,
    out_probability: *mut f32,
) -> LoupeStatus {
    guard(|| {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { args::out(out_probability, "out_probability", 0.0) }?;
        read(result, |r| {
            let probabilities = &r.detection.class_probabilities;
            let i = args::index(index, probabilities.len(), "index")?;
            *out = probabilities[i];
            Ok(())
        })
    })
}

/// Clears the three outputs, then writes the pointer to the map `select` picks and the maps' size; a map the
/// inspect options freed (`skipped` names the bit) is refused.
///
/// # Safety
/// Each output pointer is NULL or valid for writing its type.
unsafe fn map_out<T>(
    result: *const LoupeResult,
    skipped: &str,
    out_data: *mut *const T,
    out_width: *mut u32,
    out_height: *mut u32,
    select: impl FnOnce(&ResultData) -> &[T],
) -> Result<(), FfiError> {
    // SAFETY: forwarded from this function's contract.
    let (d, w, h) = unsafe {
        (
            args::out(out_data, "out_data", std::ptr::null())?,
            args::out(out_width, "out_width", 0)?,
            args::out(out_height, "out_height", 0)?,
        )
    };
    read(result, |r| {
        let map = &r.detection.anomaly_map;
        let data = select(r);
        if data.len() != map.width * map.height {
            return Err(FfiError::new(
                LoupeStatus::InvalidArgument,
                format!("`result`: this map was not kept (skipped by the inspect options' `skip`: {skipped})"),
            ));
        }
        // The result lives in the registry beyond this call: the pointer stays valid until it is destroyed.
        *d = data.as_ptr();
        *w = map.width as u32;
        *h = map.height as u32;
        Ok(())
    })
}

/// The anomaly map: `width * height` floats, row-major, range [0, `loupe_result_map_range`]. Its size is the
/// input image's (or the model's, per `postprocess.map_size`). Owned by the result (valid until
/// `loupe_result_destroy`).
///
/// Thread-safety: safe from any thread.
///
/// # Safety
/// `out_data`, `out_width` and `out_height` are NULL or valid for writing their types.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_result_anomaly_map(
    result: *const LoupeResult,
    out_data: *mut *const f32,
    out_width: *mut u32,
    out_height: *mut u32,
) -> LoupeStatus {
    // SAFETY: forwarded from this function's contract.
    guard(|| unsafe {
        map_out(result, "LOUPE_SKIP_ANOMALY_MAP", out_data, out_width, out_height, |r| &r.detection.anomaly_map.data)
    })
}

/// The top of the anomaly map's range: the number of feature layers for text-only results, 1.0 for results fused
/// with reference evidence (golden samples or mutual scoring; `layer_sum` fusion: 3 x layers). The top of a colour
/// scale that means the same on every image of that mode.
///
/// Thread-safety: safe from any thread.
///
/// # Safety
/// `out_range` is NULL or valid for writing a `float`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_result_map_range(result: *const LoupeResult, out_range: *mut f32) -> LoupeStatus {
    guard(|| {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { args::out(out_range, "out_range", 0.0) }?;
        read(result, |r| {
            *out = r.detection.map_range;
            Ok(())
        })
    })
}

/// The image score on a scale where the image threshold is 0.5, in [0, 1] (linear from 0 to the threshold and from
/// the threshold to the top of the score's range): comparable between scoring modes, fusions and profiles, whose
/// raw scores have different ranges and thresholds. Use `loupe_result_is_anomalous` for the label.
///
/// Thread-safety: safe from any thread.
///
/// # Safety
/// `out_score` is NULL or valid for writing a `float`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_result_normalized_score(result: *const LoupeResult, out_score: *mut f32) -> LoupeStatus {
    guard(|| {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { args::out(out_score, "out_score", 0.0) }?;
        read(result, |r| {
            *out = r.detection.normalized_score;
            Ok(())
        })
    })
}

/// Which evidence the result rests on: scoring mode, text and reference image scores, the pool compared with and
/// whether a mutual window was still filling. The caller sets `out_evidence->struct_size` to
/// `sizeof(LoupeEvidence)`; a smaller value than this version's fields is refused with
/// `LOUPE_STATUS_INVALID_ARGUMENT` and nothing is written. On any other failure the fields are cleared (mode
/// `LOUPE_MODE_TEXT`, scores 0, reference score NaN). `struct_size` itself is never written.
///
/// Thread-safety: safe from any thread.
///
/// # Safety
/// `out_evidence` is NULL or points to a `LoupeEvidence` whose `struct_size` is readable and which is valid for
/// writing `struct_size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_result_evidence(
    result: *const LoupeResult,
    out_evidence: *mut LoupeEvidence,
) -> LoupeStatus {
    guard(|| {
        if out_evidence.is_null() {
            return Err(FfiError::null("out_evidence"));
        }
        // SAFETY: non-NULL, and `struct_size` readable by the contract. Fields are read and written one by one
        // through raw pointers: the caller's struct may be an older, shorter version.
        let size = unsafe { std::ptr::addr_of!((*out_evidence).struct_size).read() } as usize;
        if size < EVIDENCE_V2_SIZE {
            return Err(FfiError::new(
                LoupeStatus::InvalidArgument,
                format!(
                    "`out_evidence->struct_size`: expected sizeof(LoupeEvidence) (at least {EVIDENCE_V2_SIZE}), \
                     found {size}"
                ),
            ));
        }
        let write = |mode: u32, text_score: f32, reference_score: f32, pool: u32, window_filling: bool| {
            // SAFETY: every field of this version lies within the `struct_size` bytes checked above.
            unsafe {
                std::ptr::addr_of_mut!((*out_evidence).mode).write(mode);
                std::ptr::addr_of_mut!((*out_evidence).text_score).write(text_score);
                std::ptr::addr_of_mut!((*out_evidence).reference_score).write(reference_score);
                std::ptr::addr_of_mut!((*out_evidence).pool).write(pool);
                std::ptr::addr_of_mut!((*out_evidence).window_filling).write(window_filling);
            }
        };
        write(LOUPE_MODE_TEXT, 0.0, f32::NAN, 0, false);
        read(result, |r| {
            let e = &r.detection.evidence;
            let pool = u32::try_from(e.pool).unwrap_or(u32::MAX);
            write(mode_code(e.mode), e.text_score, e.reference_score.unwrap_or(f32::NAN), pool, e.window_filling);
            Ok(())
        })
    })
}

/// The binary mask: `width * height` bytes, 0 or 255, row-major, the anomaly map's size. Owned by the result
/// (valid until `loupe_result_destroy`); an OpenCV user can wrap it as `cv::Mat(height, width, CV_8UC1, data)`.
///
/// Thread-safety: safe from any thread.
///
/// # Safety
/// `out_data`, `out_width` and `out_height` are NULL or valid for writing their types.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_result_mask(
    result: *const LoupeResult,
    out_data: *mut *const u8,
    out_width: *mut u32,
    out_height: *mut u32,
) -> LoupeStatus {
    // SAFETY: forwarded from this function's contract.
    guard(|| unsafe { map_out(result, "", out_data, out_width, out_height, |r| &r.detection.mask) })
}

/// The type map: `width * height` class indices (`uint16_t`), row-major, the anomaly map's size; 0 outside the
/// mask, else the most probable defect type of the pixel. Owned by the result (valid until
/// `loupe_result_destroy`).
///
/// Thread-safety: safe from any thread.
///
/// # Safety
/// `out_data`, `out_width` and `out_height` are NULL or valid for writing their types.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_result_type_map(
    result: *const LoupeResult,
    out_data: *mut *const u16,
    out_width: *mut u32,
    out_height: *mut u32,
) -> LoupeStatus {
    // SAFETY: forwarded from this function's contract.
    guard(|| unsafe {
        map_out(result, "LOUPE_SKIP_TYPE_MAP", out_data, out_width, out_height, |r| &r.detection.type_map)
    })
}

/// The number of connected regions of the mask.
///
/// Thread-safety: safe from any thread.
///
/// # Safety
/// `out_count` is NULL or valid for writing a `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_result_region_count(result: *const LoupeResult, out_count: *mut usize) -> LoupeStatus {
    guard(|| {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { args::out(out_count, "out_count", 0) }?;
        read(result, |r| {
            *out = r.detection.regions.len();
            Ok(())
        })
    })
}

/// Region `index` (0 <= index < `loupe_result_region_count`), copied into `*out_region`.
///
/// Thread-safety: safe from any thread.
///
/// # Safety
/// `out_region` is NULL or valid for writing a `LoupeRegion`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_result_region(
    result: *const LoupeResult,
    index: usize,
    out_region: *mut LoupeRegion,
) -> LoupeStatus {
    let cleared = LoupeRegion {
        x: 0,
        y: 0,
        width: 0,
        height: 0,
        area: 0,
        type_index: 0,
        type_name: std::ptr::null(),
        mean_score: 0.0,
        max_score: 0.0,
    };
    guard(|| {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { args::out(out_region, "out_region", cleared) }?;
        read(result, |r| {
            let i = args::index(index, r.detection.regions.len(), "index")?;
            let region = &r.detection.regions[i];
            let type_index = r.region_types[i];
            let [x, y, width, height] = region.bbox;
            *out = LoupeRegion {
                x,
                y,
                width,
                height,
                area: region.area,
                type_index,
                type_name: r.class_names.get(type_index as usize).map_or(std::ptr::null(), |n| n.as_ptr()),
                mean_score: region.mean_score,
                max_score: region.max_score,
            };
            Ok(())
        })
    })
}

/// Writes a PNG picture of the result: `image` (the inspected image, or any view of it; resized to the map size
/// if it differs) tinted with the anomaly heatmap, the mask outlined in red and each region boxed in yellow.
/// The file is always PNG, whatever its extension; an existing file is replaced.
///
/// Thread-safety: safe from any thread (two calls must not write the same file).
///
/// # Safety
/// `image` is NULL or a view as for `loupe_session_inspect`; `path` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_result_write_overlay(
    result: *const LoupeResult,
    image: *const LoupeImageView,
    path: *const c_char,
) -> LoupeStatus {
    guard(|| {
        let r = handles::result(result, "result")?;
        // SAFETY: a non-NULL view is readable by the contract.
        let image = unsafe { image.as_ref() }.ok_or_else(|| FfiError::null("image"))?;
        // SAFETY: forwarded from this function's contract.
        let path = unsafe { args::path(path, "path") }?;
        // SAFETY: as above; the view is dropped before returning.
        let view = unsafe { image.borrow("image") }?;
        let map = &r.detection.anomaly_map;
        if map.data.len() != map.width * map.height {
            return Err(FfiError::new(
                LoupeStatus::InvalidArgument,
                "`result`: its anomaly map was not kept (LOUPE_SKIP_ANOMALY_MAP): no overlay can be drawn",
            ));
        }
        let (w, h) = (map.width as u32, map.height as u32);
        let mut rgb = view.to_rgb();
        if rgb.dimensions() != (w, h) {
            rgb = image::imageops::resize(&rgb, w, h, image::imageops::FilterType::Triangle);
        }
        render::overlay(&rgb, &r.detection, r.detection.map_range)
            .save_with_format(&path, image::ImageFormat::Png)
            .map_err(|e| FfiError::new(LoupeStatus::Io, format!("overlay {}: cannot write: {e}", path.display())))
    })
}

/// A new result from `result`'s kept maps under other thresholds, minimum region area or segment rule
/// (`options`; fields whose bit is clear keep `result`'s values): label, normalised score, mask, type map and
/// regions are recomputed, maps and scores copied; the model does not run again. Bit-identical to inspecting with
/// those options. `options` must not set `LOUPE_OPTION_CLASSES` (a vocabulary needs the model:
/// `LOUPE_STATUS_INVALID_ARGUMENT`); its `skip` bits apply to the new result. A result whose anomaly map or type map
/// was skipped, or made by a post-processor plugin that makes its own masks, gives `LOUPE_STATUS_MISMATCH`.
///
/// On success `*out_result` receives a new result, to be released with `loupe_result_destroy` (the original stays
/// valid); on failure it is set to NULL.
///
/// Thread-safety: safe from any thread.
///
/// # Safety
/// `options` is NULL or a `LoupeInspectOptions` as its documentation says; `out_result` is NULL or valid for
/// writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_result_rethreshold(
    result: *const LoupeResult,
    options: *const LoupeInspectOptions,
    out_result: *mut *mut LoupeResult,
) -> LoupeStatus {
    guard(|| {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { args::out(out_result, "out_result", std::ptr::null_mut()) }?;
        let r = handles::result(result, "result")?;
        // SAFETY: as above.
        let options = unsafe { options::read(options) }?;
        if options.classes.is_some() {
            return Err(FfiError::new(
                LoupeStatus::InvalidArgument,
                "`options->set`: LOUPE_OPTION_CLASSES cannot apply to a finished result (a vocabulary needs the \
                 model); inspect again with it",
            ));
        }
        let mut detection = r.detection.rethreshold(&options.decision(&r.detection.decision()))?;
        options.trim(&mut detection);
        *out = handles::insert(Object::Result(std::sync::Arc::new(ResultData::new(detection, r.components.clone()))));
        Ok(())
    })
}

/// The result as JSON, the same document `loupe inspect` writes per image (score, label, image type, class
/// probabilities, thresholds, evidence, regions, component identities; `outputs` empty), with `image` as its
/// `image` field (NULL: `""`). Written as UTF-8 with a terminating NUL into `buffer` when it has room
/// (`capacity` bytes, NUL included); `*out_length` always receives the length without the NUL. Call with `buffer`
/// NULL (and `capacity` 0) to learn the length first; a buffer too small gives `LOUPE_STATUS_OUT_OF_RANGE` and is
/// left untouched.
///
/// Thread-safety: safe from any thread.
///
/// # Safety
/// `image` is NULL or a NUL-terminated string; `buffer` is NULL or valid for writing `capacity` bytes;
/// `out_length` is NULL or valid for writing a `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_result_to_json(
    result: *const LoupeResult,
    image: *const c_char,
    buffer: *mut c_char,
    capacity: usize,
    out_length: *mut usize,
) -> LoupeStatus {
    guard(|| {
        // SAFETY: forwarded from this function's contract.
        let length = unsafe { args::out(out_length, "out_length", 0) }?;
        let r = handles::result(result, "result")?;
        // SAFETY: as above.
        let image = if image.is_null() { String::new() } else { unsafe { args::text(image, "image") }?.to_string() };
        let d = &r.detection;
        let report = ImageReport::new(image, d, d.map_range, &r.components, Default::default());
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| FfiError::new(LoupeStatus::Error, format!("result JSON: {e}")))?;
        *length = text.len();
        if buffer.is_null() {
            return Ok(());
        }
        if capacity <= text.len() {
            return Err(FfiError::new(
                LoupeStatus::OutOfRange,
                format!(
                    "`capacity`: expected at least {} bytes (the JSON and its NUL), found {capacity}",
                    text.len() + 1
                ),
            ));
        }
        // SAFETY: `buffer` holds `capacity > text.len()` writable bytes by the contract.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), buffer.cast::<u8>(), text.len());
            buffer.add(text.len()).write(0);
        }
        Ok(())
    })
}
