//! Product profiles: loaded from a file or made from good reference images, bound to an engine's backbone, and
//! chosen per session (`loupe_session_set_profile`) or per call (`loupe_session_inspect_with_profile`). One engine
//! serves many customers: the backbone is loaded once, each profile brings its vocabulary, thresholds, fusion and
//! golden samples.

use std::ffi::{CString, c_char};
use std::sync::Arc;

use loupe_sdk::BoundProfile;
use loupe_sdk::profile::{self, Augmentation, ProfileOptions, ReferenceImage};

use crate::args;
use crate::engine::{LoupeEngine, c_string};
use crate::guard::guard;
use crate::handles::{self, Object};
use crate::image::LoupeImageView;
use crate::status::{FfiError, LoupeStatus};

/// Reference augmentation: the images only.
pub const LOUPE_AUGMENTATION_NONE: u32 = 0;
/// Reference augmentation: each image plus its horizontal and vertical mirror images and its half turn (4 views).
/// Only for products whose normal appearance does not change when mirrored.
pub const LOUPE_AUGMENTATION_FLIPS: u32 = 1;
/// Reference augmentation: each image under the 8 symmetries of the square (quarter turns and their mirror
/// images). Only for products whose normal appearance does not change when turned or mirrored.
pub const LOUPE_AUGMENTATION_ROTATIONS: u32 = 2;

/// A product profile (vocabulary, calibrated thresholds, fusion settings, golden samples) bound to an engine's
/// backbone model. Opaque; create with `loupe_profile_load` or `loupe_profile_create`, destroy with
/// `loupe_profile_destroy`. Immutable: any number of threads and sessions may use one profile at the same time.
pub struct LoupeProfile {
    _private: [u8; 0],
}

/// Options of `loupe_profile_create`. Zero-initialise it, set `struct_size` to `sizeof(LoupeProfileOptions)`, then
/// the fields wanted: a zero field means its default. Fields may be appended in later versions (`struct_size` tells
/// the library which ones the caller knows).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LoupeProfileOptions {
    /// `sizeof(LoupeProfileOptions)`.
    pub struct_size: u32,
    /// The profile's name (customer, part), UTF-8; NULL = `"profile"`. Copied during the call.
    pub name: *const c_char,
    /// `LOUPE_AUGMENTATION_NONE` (0), `LOUPE_AUGMENTATION_FLIPS` (1) or `LOUPE_AUGMENTATION_ROTATIONS` (2).
    pub augmentation: u32,
    /// Share of the reference patches the greedy coreset keeps, in (0, 1]; 0 = 1 (keep all). Smaller profiles
    /// and faster inspections for a little accuracy.
    pub coreset_fraction: f32,
    /// Seed of the coreset (its first row and projection): the same seed gives the same profile.
    pub seed: u64,
}

/// Bytes of `LoupeProfileOptions` up to the end of its last field in this version: the least `struct_size`
/// accepted. A later version that appends fields will still accept this size and default the new fields.
const OPTIONS_V2_SIZE: usize = std::mem::offset_of!(LoupeProfileOptions, seed) + size_of::<u64>();

/// What a profile handle refers to. Sessions hold the `BoundProfile` itself, so destroying the handle does not
/// take a profile away from the sessions using it.
pub(crate) struct ProfileData {
    pub(crate) profile: Arc<BoundProfile>,
    /// The profile's name as a C string (owned here, handed out by `loupe_profile_name`).
    name: CString,
}

impl ProfileData {
    fn new(profile: Arc<BoundProfile>) -> Self {
        let name = c_string(profile.name());
        Self { profile, name }
    }
}

/// The SDK augmentation of a `LOUPE_AUGMENTATION_*` number (an integer: an out-of-range value in a C enum
/// parameter would be undefined behaviour on the Rust side).
fn augmentation(code: u32) -> Result<Augmentation, FfiError> {
    match code {
        LOUPE_AUGMENTATION_NONE => Ok(Augmentation::None),
        LOUPE_AUGMENTATION_FLIPS => Ok(Augmentation::Flips),
        LOUPE_AUGMENTATION_ROTATIONS => Ok(Augmentation::Rotations),
        other => Err(FfiError::new(
            LoupeStatus::InvalidArgument,
            format!(
                "`options->augmentation`: expected LOUPE_AUGMENTATION_NONE (0), LOUPE_AUGMENTATION_FLIPS (1) or \
                 LOUPE_AUGMENTATION_ROTATIONS (2), found {other}"
            ),
        )),
    }
}

/// The SDK options of a C options struct (NULL: all defaults).
///
/// # Safety
/// `options` is NULL or points to a readable `struct_size`, and to that many readable bytes.
unsafe fn profile_options(options: *const LoupeProfileOptions) -> Result<ProfileOptions, FfiError> {
    let mut out = ProfileOptions::default();
    if options.is_null() {
        return Ok(out);
    }
    // SAFETY: non-NULL and `struct_size` readable by the contract.
    let size = unsafe { std::ptr::addr_of!((*options).struct_size).read() } as usize;
    if size < OPTIONS_V2_SIZE {
        return Err(FfiError::new(
            LoupeStatus::InvalidArgument,
            format!(
                "`options->struct_size`: expected sizeof(LoupeProfileOptions) (at least {OPTIONS_V2_SIZE}), found \
                 {size}"
            ),
        ));
    }
    // SAFETY: the caller vouched for `size` readable bytes, which cover the whole struct of this version.
    let o = unsafe { options.read() };
    if !o.name.is_null() {
        // SAFETY: a non-NULL name is a NUL-terminated string by the contract.
        out.name = unsafe { args::text(o.name, "options->name") }?.to_string();
    }
    out.augmentation = augmentation(o.augmentation)?;
    let f = o.coreset_fraction;
    out.coreset_fraction = if f == 0.0 {
        1.0
    } else if f > 0.0 && f <= 1.0 {
        f
    } else {
        return Err(FfiError::new(
            LoupeStatus::InvalidArgument,
            format!("`options->coreset_fraction`: expected a number in (0, 1], or 0 for 1 (keep all), found {f}"),
        ));
    };
    out.seed = o.seed;
    Ok(out)
}

/// Loads a profile file (`loupe profile create`, `loupe_profile_save`) and binds it to `engine`'s backbone: its
/// model, layers, dimension and grid are checked and the text matrix of its vocabulary is computed once.
///
/// On success `*out_profile` receives a new handle, to be released with `loupe_profile_destroy`; on failure it is
/// set to NULL. A missing or unreadable file gives `LOUPE_STATUS_IO`; a file that is not a profile, is truncated
/// or corrupt, or was made for another backbone model gives `LOUPE_STATUS_PROFILE`; both messages name the file.
///
/// Thread-safety: safe from any thread, concurrently on one engine.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `out_profile` is NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_profile_load(
    engine: *const LoupeEngine,
    path: *const c_char,
    out_profile: *mut *mut LoupeProfile,
) -> LoupeStatus {
    guard(|| {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { args::out(out_profile, "out_profile", std::ptr::null_mut()) }?;
        let engine = handles::engine(engine, "engine")?;
        // SAFETY: as above.
        let path = unsafe { args::path(path, "path") }?;
        let bound = engine.engine.load_profile(&path)?;
        *out = handles::insert(Object::Profile(Arc::new(ProfileData::new(bound))));
        Ok(())
    })
}

/// Makes a profile with golden samples from `count` (at least 2) good reference images of one product, with
/// `engine`'s backbone: each image (and each augmented view) is encoded once, its patch features kept as the
/// reference memory, and the scale of normal variation measured between the references. The profile is bound to
/// `engine`; its vocabulary and fusion are the engine's, it has no calibrated thresholds. The images are recorded
/// in it as `references[0]`, `references[1]`, ... with the SHA-256 of their pixels. `options` NULL means all
/// defaults (name `"profile"`, no augmentation, keep all patches, seed 0).
///
/// On success `*out_profile` receives a new handle, to be released with `loupe_profile_destroy` (save it with
/// `loupe_profile_save`); on failure it is set to NULL. Fewer than 2 images give `LOUPE_STATUS_MISMATCH`; a bad
/// view `LOUPE_STATUS_IMAGE`, naming `references[i]`.
///
/// Thread-safety: safe from any thread, concurrently on one engine.
///
/// # Safety
/// `references` is NULL or points to `count` views, each as for `loupe_session_inspect`; `options` is NULL or
/// points to a `LoupeProfileOptions` whose `struct_size` bytes are readable; `out_profile` is NULL or valid for
/// writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_profile_create(
    engine: *const LoupeEngine,
    references: *const LoupeImageView,
    count: usize,
    options: *const LoupeProfileOptions,
    out_profile: *mut *mut LoupeProfile,
) -> LoupeStatus {
    guard(|| {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { args::out(out_profile, "out_profile", std::ptr::null_mut()) }?;
        let engine = handles::engine(engine, "engine")?;
        if references.is_null() && count > 0 {
            return Err(FfiError::null("references"));
        }
        // SAFETY: as above.
        let options = unsafe { profile_options(options) }?;
        let views: &[LoupeImageView] = if count == 0 {
            &[]
        } else {
            // SAFETY: non-NULL and `count` views long by the contract.
            unsafe { std::slice::from_raw_parts(references, count) }
        };
        let names: Vec<String> = (0..views.len()).map(|i| format!("references[{i}]")).collect();
        let images = views
            .iter()
            .zip(&names)
            .map(|(view, name)| {
                // SAFETY: the pixels are readable for the whole call by the contract; the views do not outlive it.
                let image = unsafe { view.borrow(name) }?;
                Ok(ReferenceImage { name, image })
            })
            .collect::<Result<Vec<_>, FfiError>>()?;
        let made = profile::create(&engine.engine, &images, &options)?;
        let bound = engine.engine.bind_profile(made)?;
        *out = handles::insert(Object::Profile(Arc::new(ProfileData::new(bound))));
        Ok(())
    })
}

/// Writes the profile to `path` (safetensors: the reference memory as tensors, the rest as JSON metadata),
/// replacing the file. `loupe_profile_load`, the `profile` configuration field and the `loupe` command read it back.
///
/// Thread-safety: safe from any thread (two calls must not write the same file).
///
/// # Safety
/// `path` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_profile_save(profile: *const LoupeProfile, path: *const c_char) -> LoupeStatus {
    guard(|| {
        let data = handles::profile(profile, "profile")?;
        // SAFETY: forwarded from this function's contract.
        let path = unsafe { args::path(path, "path") }?;
        data.profile.profile().save(&path)?;
        Ok(())
    })
}

/// Destroys a profile handle. Sessions using the profile keep it (they hold it until they switch profile or are
/// destroyed), and results made with it stay valid. NULL is accepted and does nothing; a handle that is not a live
/// profile gives `LOUPE_STATUS_INVALID_HANDLE`.
///
/// Thread-safety: safe from any thread, but the name returned by `loupe_profile_name` dies with the handle: no
/// thread may still read it.
///
/// # Safety
/// None beyond passing a value received from Loupe (any value is checked).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_profile_destroy(profile: *mut LoupeProfile) -> LoupeStatus {
    guard(|| handles::remove(profile, "profile", handles::profile))
}

/// The profile's name (`LoupeProfileOptions.name`, or the name recorded in its file). The string is owned by the
/// profile handle: do not free it; it stays valid until `loupe_profile_destroy`.
///
/// Thread-safety: safe from any thread.
///
/// # Safety
/// `out_name` is NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_profile_name(profile: *const LoupeProfile, out_name: *mut *const c_char) -> LoupeStatus {
    guard(|| {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { args::out(out_name, "out_name", std::ptr::null()) }?;
        let data = handles::profile(profile, "profile")?;
        // The profile data lives in the registry beyond this call: the pointer stays valid until it is destroyed.
        *out = data.name.as_ptr();
        Ok(())
    })
}

/// Whether the profile holds golden samples (a reference memory). Images inspected with such a profile are scored
/// against them (`LOUPE_MODE_GOLDEN`); with a profile without them, by text alone or mutually.
///
/// Thread-safety: safe from any thread.
///
/// # Safety
/// `out_has_references` is NULL or valid for writing a `bool`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn loupe_profile_has_references(
    profile: *const LoupeProfile,
    out_has_references: *mut bool,
) -> LoupeStatus {
    guard(|| {
        // SAFETY: forwarded from this function's contract.
        let out = unsafe { args::out(out_has_references, "out_has_references", false) }?;
        *out = handles::profile(profile, "profile")?.profile.has_references();
        Ok(())
    })
}
