//! The registry of live handles. A handle given to C is a token, never dereferenced: the registry maps it to the
//! object, so a NULL, destroyed, foreign or wrong-kind handle is refused with a status instead of being followed.
//! Tokens come from a counter and are never reused, so a destroyed handle stays stale even after new objects are
//! created (a raw address could be handed out again by the allocator).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use crate::engine::EngineData;
use crate::profile::ProfileData;
use crate::result::ResultData;
use crate::session::SessionData;
use crate::status::{FfiError, LoupeStatus};

/// A live object behind a handle.
pub(crate) enum Object {
    Engine(Arc<EngineData>),
    Session(Arc<SessionData>),
    Result(Arc<ResultData>),
    Profile(Arc<ProfileData>),
}

impl Object {
    fn kind(&self) -> &'static str {
        match self {
            Self::Engine(_) => "an engine",
            Self::Session(_) => "a session",
            Self::Result(_) => "a result",
            Self::Profile(_) => "a profile",
        }
    }
}

struct Registry {
    /// Next token; starts high and steps by 16 so tokens look like (and are sized like) aligned addresses.
    next: usize,
    live: HashMap<usize, Object>,
}

static REGISTRY: LazyLock<Mutex<Registry>> =
    LazyLock::new(|| Mutex::new(Registry { next: 0x10_0000, live: HashMap::new() }));

fn registry() -> MutexGuard<'static, Registry> {
    // The registry is a map: a panic elsewhere cannot leave it inconsistent, so a poisoned lock is still usable.
    REGISTRY.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Registers `object` and returns its handle.
pub(crate) fn insert<T>(object: Object) -> *mut T {
    let mut reg = registry();
    let token = reg.next;
    reg.next += 16;
    reg.live.insert(token, object);
    std::ptr::without_provenance_mut(token)
}

/// Looks up a handle of the kind `pick` accepts; `what` names the argument in messages.
fn get<T, U>(handle: *const T, what: &str, expected: &str, pick: impl Fn(&Object) -> Option<U>) -> Result<U, FfiError> {
    if handle.is_null() {
        return Err(FfiError::null(what));
    }
    let reg = registry();
    match reg.live.get(&handle.addr()) {
        None => Err(FfiError::new(
            LoupeStatus::InvalidHandle,
            format!("`{what}` ({handle:p}) is not a live Loupe handle: it was destroyed, or never created by Loupe"),
        )),
        Some(object) => pick(object).ok_or_else(|| {
            FfiError::new(
                LoupeStatus::InvalidHandle,
                format!("`{what}` ({handle:p}) is {}, expected {expected}", object.kind()),
            )
        }),
    }
}

pub(crate) fn engine<T>(handle: *const T, what: &str) -> Result<Arc<EngineData>, FfiError> {
    get(handle, what, "an engine", |o| match o {
        Object::Engine(e) => Some(e.clone()),
        _ => None,
    })
}

pub(crate) fn session<T>(handle: *const T, what: &str) -> Result<Arc<SessionData>, FfiError> {
    get(handle, what, "a session", |o| match o {
        Object::Session(s) => Some(s.clone()),
        _ => None,
    })
}

pub(crate) fn result<T>(handle: *const T, what: &str) -> Result<Arc<ResultData>, FfiError> {
    get(handle, what, "a result", |o| match o {
        Object::Result(r) => Some(r.clone()),
        _ => None,
    })
}

pub(crate) fn profile<T>(handle: *const T, what: &str) -> Result<Arc<ProfileData>, FfiError> {
    get(handle, what, "a profile", |o| match o {
        Object::Profile(p) => Some(p.clone()),
        _ => None,
    })
}

/// Removes a handle after checking its kind with `check` (one of the lookups above). NULL is a no-op, as with
/// `free`. The object itself is dropped outside the registry lock (dropping an engine frees a model, a profile its
/// reference memory).
pub(crate) fn remove<T, U>(
    handle: *mut T,
    what: &str,
    check: impl Fn(*const T, &str) -> Result<U, FfiError>,
) -> Result<(), FfiError> {
    if handle.is_null() {
        return Ok(());
    }
    check(handle, what)?;
    let removed = registry().live.remove(&handle.addr());
    // A concurrent destroy of the same handle may have won the race between the check and the removal.
    removed.map(drop).ok_or_else(|| {
        FfiError::new(LoupeStatus::InvalidHandle, format!("`{what}` ({handle:p}) was destroyed by another thread"))
    })
}
