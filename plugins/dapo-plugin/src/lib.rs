//! The DAPO reference set as a shared library (`libloupe_dapo_plugin.so`): CLIP ONNX backbone, DAPO prompt bank
//! and post-processor, registered under the same names as the built-ins, so loading it swaps them in.

loupe_sdk::export_plugin!(name: "dapo", version: env!("CARGO_PKG_VERSION"), register: loupe_dapo::register_plugin);
