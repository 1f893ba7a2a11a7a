//! `include/loupe_plugin.h` is generated from `sdk/src/plugin/abi.rs` by cbindgen and committed: this test
//! regenerates it and fails when the committed file differs. To accept an ABI change:
//! `LOUPE_UPDATE_HEADER=1 cargo test -p loupe-sdk --test plugin_header`.

use std::path::Path;

#[test]
fn committed_plugin_header_matches_a_fresh_generation() {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(sdk.join("cbindgen-plugin.toml")).expect("cbindgen-plugin.toml parses");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(sdk.join("src/plugin/abi.rs"))
        .generate()
        .expect("cbindgen generates the plugin header");
    let mut fresh = Vec::new();
    bindings.write(&mut fresh);
    let fresh = String::from_utf8(fresh).expect("UTF-8");
    let path = sdk.join("../include/loupe_plugin.h");
    if std::env::var_os("LOUPE_UPDATE_HEADER").is_some_and(|v| v == "1") {
        std::fs::write(&path, &fresh).expect("header written");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let first = committed.lines().zip(fresh.lines()).position(|(a, b)| a != b);
    assert!(
        committed == fresh,
        "include/loupe_plugin.h is stale (first difference at line {}); regenerate it with \
         LOUPE_UPDATE_HEADER=1 cargo test -p loupe-sdk --test plugin_header",
        first.map_or_else(|| "end".into(), |i| (i + 1).to_string())
    );
}
