//! Loading plugin libraries: every field of the declaration is checked before it is trusted, and a refusal names
//! the file and the reason (not a plugin, ABI or SDK version mismatch, duplicate component, failed registration).

use std::ffi::{OsStr, c_char, c_void};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::SDK_VERSION;
use super::abi::*;
use super::error_buf::{HostErrorBuf, read_str, write_error};
use super::foreign::{ForeignBackbone, ForeignPostProcessor, ForeignPromptBank, Provenance};
use super::registry::{Origin, PluginInfo, Registry};
use crate::config::LoupeConfig;
use crate::error::{LoupeError, Result};

/// Shared-library file extensions looked for in plugin folders.
const LIBRARY_EXTENSIONS: [&str; 3] = ["so", "dylib", "dll"];

/// Whether a plugin built against SDK `plugin` can run in this host: same major version, and the same minor while
/// the major is 0 (semver's rule for 0.x).
pub fn sdk_compatible(plugin: &str, host: &str) -> bool {
    let parse = |v: &str| -> Option<(u64, u64)> {
        let mut it = v.split('.');
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    };
    match (parse(plugin), parse(host)) {
        (Some((pm, pn)), Some((hm, hn))) => pm == hm && (hm != 0 || pn == hn),
        _ => false,
    }
}

/// What `register` collects before it is committed to the registry all at once.
struct Registration {
    library: Arc<libloading::Library>,
    origin: Origin,
    staged: Registry,
    duplicate: Option<String>,
    existing: *const Registry,
}

impl Registration {
    fn check_name(&mut self, role: super::registry::Role, name: &str) -> std::result::Result<(), String> {
        // SAFETY: `existing` points to the registry borrowed for the whole `load_plugin` call.
        let taken_by_plugin = unsafe { &*self.existing }
            .listing()
            .into_iter()
            .any(|l| l.role == role && l.name == name && matches!(l.origin, Origin::Plugin(_)));
        if taken_by_plugin || self.staged.contains(role, name) {
            let msg = format!("duplicate component name: {role} `{name}` is already registered");
            self.duplicate = Some(msg.clone());
            return Err(msg);
        }
        Ok(())
    }
}

/// The plugin's `register` function, as a declaration holds it.
type RegisterFn = unsafe extern "C" fn(host: *const LoupeHostApi, err: *mut LoupeErrorBuf) -> i32;

/// What a plugin declaration says, once [`LoupePluginDeclaration::check`] has accepted it.
#[doc(hidden)]
pub struct CheckedDeclaration<'a> {
    /// The SDK version it was built against (compatible with this host's).
    pub sdk_version: &'a str,
    /// Its name, not empty.
    pub name: &'a str,
    /// Its own version (empty when it gives none or not UTF-8).
    pub version: &'a str,
    /// Its registration function.
    pub register: RegisterFn,
}

impl LoupePluginDeclaration {
    /// Checks every field of the declaration `decl` that `loupe_plugin_declare` returned, before anything of it
    /// is trusted: not null, `abi_version` (read alone first), `struct_size`, the SDK version, the name and the
    /// register function. The error is the reason, without the file name. Used by the plugin loader and by the
    /// fuzz target `plugin_declaration`.
    ///
    /// # Safety
    /// `decl` is null, or points to a readable `abi_version` and `struct_size` (the first 8 bytes of every ABI
    /// version) and, when `struct_size` is at least `size_of::<LoupePluginDeclaration>()`, to a whole declaration
    /// whose string fields are null or NUL-terminated strings that outlive `'a`.
    #[doc(hidden)]
    pub unsafe fn check<'a>(decl: *const Self) -> std::result::Result<CheckedDeclaration<'a>, String> {
        if decl.is_null() {
            return Err(format!("`{LOUPE_PLUGIN_ENTRY}` returned null"));
        }
        // Read only the ABI version before trusting the rest of the layout.
        // SAFETY: non-null; the first field of every ABI version is a u32 abi_version.
        let abi = unsafe { std::ptr::read(decl.cast::<u32>()) };
        if abi != LOUPE_PLUGIN_ABI_VERSION {
            return Err(format!("plugin ABI version {abi}, this host speaks version {LOUPE_PLUGIN_ABI_VERSION}"));
        }
        // Read `struct_size` alone too: a reference to the whole declaration is made only once its size is known.
        // SAFETY: non-null; ABI version 1 starts with abi_version and struct_size.
        let size = unsafe { std::ptr::addr_of!((*decl).struct_size).read() };
        if (size as usize) < std::mem::size_of::<LoupePluginDeclaration>() {
            return Err(format!(
                "declaration of {size} bytes, ABI version 1 needs at least {}",
                std::mem::size_of::<LoupePluginDeclaration>()
            ));
        }
        // SAFETY: checked above: the plugin provides a whole ABI version 1 declaration.
        let decl = unsafe { &*decl };
        // SAFETY: C strings per the ABI (null refused).
        let (sdk, name, version) =
            unsafe { (read_str(decl.sdk_version), read_str(decl.name), read_str(decl.plugin_version)) };
        let sdk_version = sdk.ok_or("declaration has no SDK version")?;
        if !sdk_compatible(sdk_version, SDK_VERSION) {
            return Err(format!("built for Loupe SDK {sdk_version}, this host is SDK {SDK_VERSION}"));
        }
        let name = name.filter(|n| !n.is_empty()).ok_or("declaration has no name")?;
        let register = decl.register.ok_or("declaration has no register function")?;
        Ok(CheckedDeclaration { sdk_version, name, version: version.unwrap_or(""), register })
    }
}

fn table_size_ok(size: u32, needed: usize) -> std::result::Result<(), String> {
    if (size as usize) < needed {
        return Err(format!("component table of {size} bytes, expected at least {needed}"));
    }
    Ok(())
}

fn table_name_ok(name: *const std::ffi::c_char) -> std::result::Result<String, String> {
    // SAFETY: the plugin passes a C string (or null, refused below).
    let name = unsafe { read_str(name) }.ok_or("component with a null or non-UTF-8 name")?;
    if name.is_empty() {
        return Err("component with an empty name".into());
    }
    Ok(name.to_string())
}

/// `check` for each component table type: the checks `register_backbone` & co. make before a table is copied.
macro_rules! table_check {
    ($($table:ty),*) => {$(
        impl $table {
            /// Checks a component table a plugin passes to the host's `register_*` function before it is
            /// copied: not null, `struct_size` at least this ABI's, a non-empty UTF-8 name (returned). Function
            /// pointers are checked when an instance is created. Used by the plugin loader and by the fuzz
            /// target `plugin_declaration`.
            ///
            /// # Safety
            /// `table` is null, or points to a readable `struct_size` (the first field of every ABI version)
            /// and, when that is at least this type's size, to a whole table whose `name` is null or a
            /// NUL-terminated string.
            #[doc(hidden)]
            pub unsafe fn check(table: *const Self) -> std::result::Result<String, String> {
                if table.is_null() {
                    return Err("null component table".into());
                }
                // `struct_size` first, alone: a table from a smaller ABI must not be read past its end (the
                // fuzz target `plugin_declaration` found that reading `name` first did).
                // SAFETY: non-null; every ABI version starts with a u32 struct_size.
                let size = unsafe { std::ptr::addr_of!((*table).struct_size).read() };
                table_size_ok(size, std::mem::size_of::<Self>())?;
                // SAFETY: the whole table is there (checked above), valid for the duration of this call.
                table_name_ok(unsafe { (*table).name })
            }
        }
    )*};
}

table_check!(LoupeBackboneTable, LoupePromptBankTable, LoupePostProcessorTable);

macro_rules! register_fn {
    ($fn_name:ident, $table:ty, $role:expr, $foreign:ident, $trait:ident, $add:ident) => {
        unsafe extern "C" fn $fn_name(context: *mut c_void, table: *const $table, err: *mut LoupeErrorBuf) -> i32 {
            let result =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> std::result::Result<(), String> {
                    // SAFETY: `context` is the `Registration` the host passed to `register`.
                    let reg = unsafe { context.cast::<Registration>().as_mut() }.ok_or("null host context")?;
                    // SAFETY: the plugin passes a valid table (or null) for the duration of this call.
                    let name = unsafe { <$table>::check(table) }?;
                    // SAFETY: checked above: not null, and at least this ABI's size.
                    let table = unsafe { &*table };
                    reg.check_name($role, &name)?;
                    let copy = <$table>::clone_table(table);
                    let provenance = Provenance { library: reg.library.clone(), component: name.clone() };
                    let factory = Arc::new(move |cfg: &LoupeConfig| -> Result<Arc<dyn crate::traits::$trait>> {
                        Ok(Arc::new($foreign::create(copy.get(), provenance.clone(), cfg)?))
                    });
                    reg.staged.$add(&name, reg.origin.clone(), factory).map_err(|e| e.to_string())
                }));
            match result {
                Ok(Ok(())) => LOUPE_PLUGIN_OK,
                Ok(Err(msg)) => {
                    // SAFETY: the plugin passes its buffer or null.
                    unsafe { write_error(err, &msg) };
                    LOUPE_PLUGIN_ERROR
                }
                Err(_) => LOUPE_PLUGIN_ERROR,
            }
        }
    };
}

/// A table copy that may be moved into a `Send + Sync` factory (tables are immutable after registration).
struct SendTable<T>(T);
impl<T> SendTable<T> {
    // A method (not a field access) so closures capture the whole wrapper, not its non-Send field.
    fn get(&self) -> &T {
        &self.0
    }
}

// SAFETY: tables are plain function pointers and plugin-owned data the ABI declares thread-safe.
unsafe impl<T> Send for SendTable<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SendTable<T> {}

trait CloneTable: Sized {
    fn clone_table(t: &Self) -> SendTable<Self>;
}
impl CloneTable for LoupeBackboneTable {
    fn clone_table(t: &Self) -> SendTable<Self> {
        SendTable(Self { ..*t })
    }
}
impl CloneTable for LoupePromptBankTable {
    fn clone_table(t: &Self) -> SendTable<Self> {
        SendTable(Self { ..*t })
    }
}
impl CloneTable for LoupePostProcessorTable {
    fn clone_table(t: &Self) -> SendTable<Self> {
        SendTable(Self { ..*t })
    }
}

register_fn!(
    register_backbone,
    LoupeBackboneTable,
    super::registry::Role::Backbone,
    ForeignBackbone,
    Backbone,
    add_backbone
);
register_fn!(
    register_prompt_bank,
    LoupePromptBankTable,
    super::registry::Role::PromptBank,
    ForeignPromptBank,
    PromptBank,
    add_prompt_bank
);
register_fn!(
    register_postprocessor,
    LoupePostProcessorTable,
    super::registry::Role::PostProcessor,
    ForeignPostProcessor,
    PostProcessor,
    add_postprocessor
);

/// [`LoupeHostApi::log`]: a plugin's log record, written through this process's logger.
unsafe extern "C" fn host_log(level: i32, target: *const c_char, message: *const c_char) {
    // A logger that panics must not unwind into the plugin.
    let _ = std::panic::catch_unwind(|| {
        let level = match level {
            LOUPE_PLUGIN_LOG_ERROR => log::Level::Error,
            LOUPE_PLUGIN_LOG_WARN => log::Level::Warn,
            LOUPE_PLUGIN_LOG_INFO => log::Level::Info,
            LOUPE_PLUGIN_LOG_DEBUG => log::Level::Debug,
            _ => log::Level::Trace,
        };
        // SAFETY: the ABI's contract: NUL-terminated strings or null.
        let (target, message) = unsafe { (read_str(target).unwrap_or("plugin"), read_str(message).unwrap_or("")) };
        log::log!(target: target, level, "{message}");
    });
}

impl Registry {
    /// Loads one plugin library and registers its components (all or none).
    pub fn load_plugin(&mut self, path: &Path) -> Result<Arc<PluginInfo>> {
        let refuse = |reason: String| LoupeError::plugin(path, reason);
        if !path.is_file() {
            return Err(refuse("no such file".into()));
        }
        // SAFETY: loading a library runs its initialisers; choosing which libraries to load is the user's
        // trust decision (plugin paths come from the configuration or LOUPE_PLUGIN_PATH).
        let library = unsafe { libloading::Library::new(path) }
            .map_err(|e| refuse(format!("cannot load shared library: {e}")))?;
        let library = Arc::new(library);
        // SAFETY: the symbol's type is fixed by the ABI.
        let declare: libloading::Symbol<'_, LoupePluginDeclareFn> =
            unsafe { library.get(LOUPE_PLUGIN_ENTRY.as_bytes()) }
                .map_err(|_| refuse(format!("not a Loupe plugin: it exports no `{LOUPE_PLUGIN_ENTRY}` symbol")))?;
        // SAFETY: calling the plugin's declared entry point, which takes no arguments.
        let decl = unsafe { declare() };
        // SAFETY: the ABI's contract for what `loupe_plugin_declare` returns; the strings are the library's
        // statics, and the library is never unloaded.
        let CheckedDeclaration { sdk_version: sdk, name, version, register } =
            unsafe { LoupePluginDeclaration::check(decl) }.map_err(&refuse)?;
        let info = Arc::new(PluginInfo {
            file: path.to_path_buf(),
            name: name.to_string(),
            version: version.to_string(),
            sdk_version: sdk.to_string(),
        });
        let mut registration = Registration {
            library: library.clone(),
            origin: Origin::Plugin(info.clone()),
            staged: Registry::new(),
            duplicate: None,
            existing: self,
        };
        let host = LoupeHostApi {
            struct_size: std::mem::size_of::<LoupeHostApi>() as u32,
            context: (&mut registration as *mut Registration).cast(),
            register_backbone: Some(register_backbone),
            register_prompt_bank: Some(register_prompt_bank),
            register_postprocessor: Some(register_postprocessor),
            log: Some(host_log),
        };
        let mut err = HostErrorBuf::default();
        let mut raw = err.raw();
        // SAFETY: the plugin's register function, with a host table valid for the call.
        let status = unsafe { register(&host, &mut raw) };
        if let Some(dup) = registration.duplicate {
            return Err(refuse(dup));
        }
        if status != LOUPE_PLUGIN_OK {
            return Err(refuse(format!("registration failed: {}", err.message())));
        }
        for l in registration.staged.listing() {
            log::info!("plugin {}: registered {} `{}`", path.display(), l.role, l.name);
        }
        self.merge(registration.staged)?;
        self.add_plugin(info.clone());
        // Plugin code is never unloaded: Rust and C++ libraries can crash on unload (thread-local destructors),
        // and components hold its functions. The handle lives on in every factory and instance.
        std::mem::forget(library);
        Ok(info)
    }

    /// Loads the plugins the configuration lists, then those of `LOUPE_PLUGIN_PATH` (when enabled).
    pub fn load_configured(&mut self, cfg: &LoupeConfig) -> Result<()> {
        let mut paths = cfg.plugins.paths.clone();
        if cfg.plugins.use_env
            && let Some(env) = std::env::var_os("LOUPE_PLUGIN_PATH")
        {
            paths.extend(split_path_list(&env));
        }
        for p in paths {
            for file in plugin_files(&p)? {
                self.load_plugin(&file)?;
            }
        }
        Ok(())
    }
}

fn split_path_list(list: &OsStr) -> Vec<PathBuf> {
    std::env::split_paths(list).filter(|p| !p.as_os_str().is_empty()).collect()
}

/// A file as is, or the shared libraries of a folder (sorted).
fn plugin_files(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if !path.is_dir() {
        return Err(LoupeError::plugin(path, "no such file or folder (from plugins.paths or LOUPE_PLUGIN_PATH)"));
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| LoupeError::io(path, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file() && p.extension().and_then(OsStr::to_str).is_some_and(|e| LIBRARY_EXTENSIONS.contains(&e))
        })
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_versions_follow_semver() {
        assert!(sdk_compatible("0.1.0", "0.1.7"));
        assert!(!sdk_compatible("0.2.0", "0.1.0"));
        assert!(sdk_compatible("1.2.0", "1.5.0"));
        assert!(!sdk_compatible("2.0.0", "1.5.0"));
        assert!(!sdk_compatible("garbage", "0.1.0"));
    }

    #[test]
    fn missing_and_non_library_files_are_refused_by_name() {
        let mut r = Registry::new();
        let err = r.load_plugin(Path::new("/nonexistent/libx.so")).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/libx.so") && err.contains("no such file"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("libfake.so");
        std::fs::write(&fake, b"not an ELF file").unwrap();
        let err = r.load_plugin(&fake).unwrap_err().to_string();
        assert!(err.contains("libfake.so") && err.contains("cannot load shared library"), "{err}");
    }

    /// Regression (fuzz target `plugin_declaration`): a table or declaration from a smaller ABI is refused by
    /// its `struct_size` without reading past it. The allocations hold only the size field, so a read of `name`
    /// would be out of bounds (AddressSanitizer and Miri report it; here the refusal is checked).
    #[test]
    fn short_tables_and_declarations_are_refused_by_their_size_alone() {
        let short_table = Box::new(4u32);
        let table: *const LoupeBackboneTable = std::ptr::from_ref(&*short_table).cast();
        // SAFETY: `struct_size` is readable, and says 4 bytes.
        let err = unsafe { LoupeBackboneTable::check(table) }.unwrap_err();
        assert!(err.contains("component table of 4 bytes"), "{err}");
        let short_decl = Box::new([LOUPE_PLUGIN_ABI_VERSION, 8u32]);
        let decl: *const LoupePluginDeclaration = std::ptr::from_ref(&*short_decl).cast();
        // SAFETY: `abi_version` and `struct_size` are readable, and say 8 bytes.
        let err = unsafe { LoupePluginDeclaration::check(decl) }.map(|_| ()).unwrap_err();
        assert!(err.contains("declaration of 8 bytes"), "{err}");
    }
}
