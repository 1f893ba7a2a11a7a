//! Fuzz target `plugin_declaration`: what a plugin library hands the host, built from the input in memory
//! without any library: the `LoupePluginDeclaration` that `loupe_plugin_declare` returns, checked by
//! [`LoupePluginDeclaration::check`] (what `Registry::load_plugin` runs right after `dlopen`), and the component
//! tables a plugin passes to `register_backbone` / `register_prompt_bank` / `register_postprocessor`, checked by
//! `LoupeBackboneTable::check` & co.; and [`sdk_compatible`] on arbitrary version strings.
//!
//! Each struct is built in an allocation of exactly the size it declares (`struct_size`, at least the 8 or 4
//! bytes every ABI version starts with, at most 256), so AddressSanitizer reports any read past what a plugin
//! compiled against a smaller ABI would provide. Strings are arbitrary bytes (invalid UTF-8 and interior NULs
//! included), NUL-terminated as the ABI requires, or null; function pointers are null or point to a function
//! that aborts if it is ever called (checking must not call them).
//!
//! Checks: nothing panics or reads out of bounds; each check accepts exactly what an independent model of the
//! ABI's rules accepts (ABI version 1, `struct_size` at least this ABI's, a UTF-8 SDK version compatible with
//! the host's, a non-empty UTF-8 name, a register function; tables: non-null, big enough, a non-empty UTF-8
//! name), and what it returns is what the plugin declared.
#![no_main]

use std::alloc::Layout;
use std::ffi::{c_char, c_void};
use std::mem::{offset_of, size_of};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use loupe_sdk::plugin::abi::*;
use loupe_sdk::plugin::{SDK_VERSION, SDK_VERSION_C, sdk_compatible};

/// A C string field: null, or arbitrary bytes with a NUL appended (an interior NUL ends the string early).
#[derive(Arbitrary, Debug)]
enum CStrField {
    Null,
    Bytes(Vec<u8>),
    /// The host's own SDK version, so that whole declarations get accepted.
    HostSdk,
}

impl CStrField {
    /// The NUL-terminated bytes to point to, if not null.
    fn buffer(&self) -> Option<Vec<u8>> {
        match self {
            Self::Null => None,
            Self::Bytes(b) => Some(b.iter().copied().chain([0]).collect()),
            Self::HostSdk => Some(SDK_VERSION_C.to_bytes_with_nul().to_vec()),
        }
    }

    /// What a reader of the C string sees: up to the first NUL, if UTF-8.
    fn expected(&self) -> Option<String> {
        let b = self.buffer()?;
        let end = b.iter().position(|&c| c == 0).expect("NUL-terminated");
        String::from_utf8(b[..end].to_vec()).ok()
    }
}

/// A `struct_size`: the host's, a little less, a little more, or anything.
#[derive(Arbitrary, Debug)]
enum Size {
    Exact,
    Less(u8),
    More(u8),
    Any(u32),
}

impl Size {
    fn get(&self, exact: usize) -> u32 {
        let exact = exact as u32;
        match *self {
            Self::Exact => exact,
            Self::Less(k) => exact.saturating_sub(u32::from(k)),
            Self::More(k) => exact + u32::from(k),
            Self::Any(v) => v,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Abi {
    Current,
    Any(u32),
}

#[derive(Arbitrary, Debug)]
struct Declaration {
    null: bool,
    abi: Abi,
    size: Size,
    sdk_version: CStrField,
    name: CStrField,
    plugin_version: CStrField,
    register: bool,
}

#[derive(Arbitrary, Debug)]
enum Kind {
    Backbone,
    PromptBank,
    PostProcessor,
}

#[derive(Arbitrary, Debug)]
struct Table {
    kind: Kind,
    null: bool,
    size: Size,
    name: CStrField,
    user_data: usize,
    /// Which function pointers are set (create, destroy, then the role's two).
    functions: [bool; 4],
}

#[derive(Arbitrary, Debug)]
struct Input {
    declaration: Declaration,
    tables: Vec<Table>,
    versions: (String, String),
}

/// A zeroed allocation of exactly `len` bytes (8-aligned), freed on drop; fields are written only where they
/// fit, as in a struct from a smaller ABI.
struct Block {
    ptr: *mut u8,
    layout: Layout,
}

impl Block {
    fn new(len: usize) -> Self {
        let layout = Layout::from_size_align(len, 8).expect("layout");
        // SAFETY: `len` > 0.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "allocation failed");
        Self { ptr, layout }
    }

    fn put<T>(&self, offset: usize, value: T) {
        if offset + size_of::<T>() <= self.layout.size() {
            // SAFETY: inside the allocation; offsets come from `offset_of!`, so aligned.
            unsafe { self.ptr.add(offset).cast::<T>().write(value) };
        }
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        // SAFETY: allocated with this layout.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) };
    }
}

/// The allocation size for a struct declaring `size` bytes: what the plugin would provide.
fn block_len(size: u32, header: usize) -> usize {
    (size as usize).clamp(header, 256)
}

fn ptr_of(buffer: &Option<Vec<u8>>) -> *const c_char {
    buffer.as_ref().map_or(std::ptr::null(), |b| b.as_ptr().cast())
}

// Functions a table may point to; checking a declaration or table must never call them.
unsafe extern "C" fn never_register(_: *const LoupeHostApi, _: *mut LoupeErrorBuf) -> i32 {
    std::process::abort()
}
unsafe extern "C" fn never_create(_: *mut c_void, _: *const c_char, _: *mut *mut c_void, _: *mut LoupeErrorBuf) -> i32 {
    std::process::abort()
}
unsafe extern "C" fn never_destroy(_: *mut c_void) {
    std::process::abort()
}
unsafe extern "C" fn never_geometry(_: *mut c_void, _: *mut LoupeBackboneGeometry, _: *mut LoupeErrorBuf) -> i32 {
    std::process::abort()
}
unsafe extern "C" fn never_encode(
    _: *mut c_void,
    _: *const LoupePluginImage,
    _: usize,
    _: *mut f32,
    _: *mut f32,
    _: *mut LoupeErrorBuf,
) -> i32 {
    std::process::abort()
}
unsafe extern "C" fn never_describe(_: *mut c_void, _: *mut LoupePromptBankInfo, _: *mut LoupeErrorBuf) -> i32 {
    std::process::abort()
}
unsafe extern "C" fn never_text(
    _: *mut c_void,
    _: *const *const c_char,
    _: usize,
    _: *mut f32,
    _: *mut LoupeErrorBuf,
) -> i32 {
    std::process::abort()
}
unsafe extern "C" fn never_process(
    _: *mut c_void,
    _: *const LoupePluginFeatures,
    _: *const LoupePluginText,
    _: *mut LoupePluginDetection,
    _: *mut LoupeErrorBuf,
) -> i32 {
    std::process::abort()
}

fn declaration(d: &Declaration) {
    let exact = size_of::<LoupePluginDeclaration>();
    let abi = match d.abi {
        Abi::Current => LOUPE_PLUGIN_ABI_VERSION,
        Abi::Any(v) => v,
    };
    let size = d.size.get(exact);
    let (sdk, name, version) = (d.sdk_version.buffer(), d.name.buffer(), d.plugin_version.buffer());
    let block = Block::new(block_len(size, 8));
    type D = LoupePluginDeclaration;
    block.put(offset_of!(D, abi_version), abi);
    block.put(offset_of!(D, struct_size), size);
    block.put(offset_of!(D, sdk_version), ptr_of(&sdk));
    block.put(offset_of!(D, name), ptr_of(&name));
    block.put(offset_of!(D, plugin_version), ptr_of(&version));
    let register: Option<unsafe extern "C" fn(*const LoupeHostApi, *mut LoupeErrorBuf) -> i32> =
        d.register.then_some(never_register);
    block.put(offset_of!(D, register), register);
    let decl: *const D = if d.null { std::ptr::null() } else { block.ptr.cast() };

    // The ABI's rules, independently.
    let expected_sdk = d.sdk_version.expected();
    let expected_name = d.name.expected().filter(|n| !n.is_empty());
    let accept = !d.null
        && abi == LOUPE_PLUGIN_ABI_VERSION
        && size as usize >= exact
        && expected_sdk.as_deref().is_some_and(|v| sdk_compatible(v, SDK_VERSION))
        && expected_name.is_some()
        && d.register;

    // SAFETY: `decl` is null or an allocation of `block_len(size)` bytes: at least the 8-byte header, and the
    // whole declaration when `size` says so; its strings are NUL-terminated buffers alive until the end.
    match unsafe { D::check(decl) } {
        Ok(c) => {
            assert!(accept, "accepted a declaration the ABI refuses: {d:?}");
            assert_eq!(Some(c.sdk_version), expected_sdk.as_deref());
            assert_eq!(Some(c.name), expected_name.as_deref());
            assert_eq!(c.version, d.plugin_version.expected().unwrap_or_default());
            assert!(c.register as *const () == never_register as *const ());
        }
        Err(reason) => {
            assert!(!accept, "refused a valid declaration ({reason}): {d:?}");
            assert!(!reason.is_empty());
        }
    }
}

fn table(t: &Table) {
    let [f0, f1, f2, f3] = t.functions;
    let create: LoupeCreateFn = f0.then_some(never_create);
    let destroy: LoupeDestroyFn = f1.then_some(never_destroy);
    let name = t.name.buffer();
    let user_data = t.user_data as *mut c_void;
    let exact = match t.kind {
        Kind::Backbone => size_of::<LoupeBackboneTable>(),
        Kind::PromptBank => size_of::<LoupePromptBankTable>(),
        Kind::PostProcessor => size_of::<LoupePostProcessorTable>(),
    };
    let size = t.size.get(exact);
    let block = Block::new(block_len(size, 4));
    let ptr = if t.null { std::ptr::null() } else { block.ptr.cast_const() };
    macro_rules! common {
        ($T:ty) => {{
            block.put(offset_of!($T, struct_size), size);
            block.put(offset_of!($T, name), ptr_of(&name));
            block.put(offset_of!($T, user_data), user_data);
            block.put(offset_of!($T, create), create);
            block.put(offset_of!($T, destroy), destroy);
        }};
    }
    // SAFETY (all three): `ptr` is null or an allocation of `block_len(size)` bytes, at least the 4-byte
    // `struct_size` and the whole table when `size` says so; `name` is a NUL-terminated buffer or null.
    let result = match t.kind {
        Kind::Backbone => {
            type T = LoupeBackboneTable;
            common!(T);
            block.put(offset_of!(T, geometry), f2.then_some(never_geometry as unsafe extern "C" fn(_, _, _) -> _));
            block.put(offset_of!(T, encode), f3.then_some(never_encode as unsafe extern "C" fn(_, _, _, _, _, _) -> _));
            unsafe { T::check(ptr.cast()) }
        }
        Kind::PromptBank => {
            type T = LoupePromptBankTable;
            common!(T);
            block.put(offset_of!(T, describe), f2.then_some(never_describe as unsafe extern "C" fn(_, _, _) -> _));
            block.put(
                offset_of!(T, text_features),
                f3.then_some(never_text as unsafe extern "C" fn(_, _, _, _, _) -> _),
            );
            unsafe { T::check(ptr.cast()) }
        }
        Kind::PostProcessor => {
            type T = LoupePostProcessorTable;
            common!(T);
            block.put(offset_of!(T, process), f3.then_some(never_process as unsafe extern "C" fn(_, _, _, _, _) -> _));
            unsafe { T::check(ptr.cast()) }
        }
    };
    let expected_name = t.name.expected().filter(|n| !n.is_empty());
    let accept = !t.null && size as usize >= exact && expected_name.is_some();
    match result {
        Ok(n) => {
            assert!(accept, "accepted a table the ABI refuses: {t:?}");
            assert_eq!(Some(n), expected_name);
        }
        Err(reason) => assert!(!accept, "refused a valid table ({reason}): {t:?}"),
    }
}

fuzz_target!(|input: Input| {
    declaration(&input.declaration);
    for t in input.tables.iter().take(8) {
        table(t);
    }
    let (a, b) = &input.versions;
    let _ = sdk_compatible(a, b);
    let _ = sdk_compatible(a, SDK_VERSION);
    assert!(sdk_compatible(SDK_VERSION, SDK_VERSION));
});
