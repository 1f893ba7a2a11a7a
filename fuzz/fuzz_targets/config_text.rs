//! Fuzz target `config_text`: a configuration file as `loupe --config` and the C API's `loupe_engine_new` read
//! it. The first byte picks the format (0: TOML, 1: JSON, 2: YAML, modulo 3), the rest is the text (lossy
//! UTF-8) fed to [`LoupeConfig::from_text`], which parses it (the `config` crate), validates it against the JSON
//! Schema and deserialises it.
//!
//! Checks: nothing panics, overflows the stack or hangs; an `Ok` configuration round-trips: its
//! `serde_json::to_value` goes back through [`LoupeConfig::from_value`] (schema and all) to an equal value, as
//! happens when the host hands it to a plugin as JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loupe_sdk::{ConfigFormat, LoupeConfig};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, text)) = data.split_first() else { return };
    let format = match selector % 3 {
        0 => ConfigFormat::Toml,
        1 => ConfigFormat::Json,
        _ => ConfigFormat::Yaml,
    };
    let text = String::from_utf8_lossy(text);
    let Ok(cfg) = LoupeConfig::from_text(&text, format) else { return };
    let value = serde_json::to_value(&cfg).expect("an accepted configuration serialises to JSON");
    let back = match LoupeConfig::from_value(&value, None) {
        Ok(back) => back,
        Err(e) => panic!("accepted configuration does not round-trip through JSON: {e}\nJSON: {value}"),
    };
    assert_eq!(back, cfg, "configuration changed through JSON: {value}");
});
