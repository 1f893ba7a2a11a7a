//! # Loupe's embedded default model
//!
//! The bytes of one Loupe model directory (`model/`: `loupe-model.json` and the three files it names, format in
//! `docs/model-format.md`) and of a prompt bank made for it (`bank.safetensors`), compiled into the binary so
//! that Loupe runs with no model configured and nothing to download. This crate only holds data; `loupe-dapo`
//! (feature `default-model`) loads it. What the model is and how to replace it: `README.md` next to this crate.

/// One embedded file: its name in the model directory and its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EmbeddedFile {
    /// File name, as `loupe-model.json` names it (`image_encoder.onnx`, ...).
    pub name: &'static str,
    /// The file's contents.
    pub bytes: &'static [u8],
}

/// Name of the metadata file among [`model_files`].
pub const METADATA_FILE: &str = "loupe-model.json";

/// File name of the embedded prompt bank.
pub const BANK_FILE: &str = "bank.safetensors";

/// The model directory's files: the metadata first, then the files it names.
const MODEL_FILES: [EmbeddedFile; 4] = [
    EmbeddedFile { name: METADATA_FILE, bytes: include_bytes!("../model/loupe-model.json") },
    EmbeddedFile { name: "image_encoder.onnx", bytes: include_bytes!("../model/image_encoder.onnx") },
    EmbeddedFile { name: "text_encoder.onnx", bytes: include_bytes!("../model/text_encoder.onnx") },
    EmbeddedFile { name: "token_embedding.safetensors", bytes: include_bytes!("../model/token_embedding.safetensors") },
];

const BANK: EmbeddedFile = EmbeddedFile { name: BANK_FILE, bytes: include_bytes!("../bank.safetensors") };

/// The files of the embedded model directory (`loupe-model.json` first).
pub fn model_files() -> &'static [EmbeddedFile] {
    &MODEL_FILES
}

/// The embedded model file called `name`, if there is one.
pub fn model_file(name: &str) -> Option<&'static EmbeddedFile> {
    MODEL_FILES.iter().find(|f| f.name == name)
}

/// The prompt bank made for the embedded model.
pub fn bank() -> EmbeddedFile {
    BANK
}

/// Bytes compiled in: the model's files and the bank.
pub fn total_bytes() -> usize {
    MODEL_FILES.iter().chain([&BANK]).map(|f| f.bytes.len()).sum()
}
