//! The DAPO prompt bank: learned hybrid-prompt context (V for normal, W shared by every defect word), deep text
//! prompts, and the model's text encoder, so that any defect word, trained or not, gets a text feature:
//! `[W1..W5] <word> anomaly object`, averaged over the bank's groups.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use loupe_sdk::{ComponentInfo, LoupeError, PromptBank, Result, TextFeatures, features::normalize};
use safetensors::SafeTensors;

use crate::model_dir::ModelDir;
#[cfg(feature = "default-model")]
use crate::model_dir::{EMBEDDED_LABEL, memory_label};
use crate::text_encoder::{EmbeddedPrompt, TextEncoder, tensor_f32};
use crate::tokenizer::ClipTokenizer;

/// Learned context of one state: `[groups, n_ctx, width]`.
struct Context {
    data: Vec<f32>,
    groups: usize,
    n_ctx: usize,
}

impl Context {
    fn group(&self, g: usize, width: usize) -> &[f32] {
        let n = self.n_ctx * width;
        &self.data[g * n..(g + 1) * n]
    }
}

/// A prompt bank file with, optionally, the text encoder of its model.
pub struct DapoPromptBank {
    path: PathBuf,
    name: String,
    model_id: String,
    dim: usize,
    words: Vec<String>,
    normal_suffix: String,
    defect_suffix: String,
    normal: Context,
    defect: Context,
    deep: Option<Vec<f32>>,
    cached: Option<TextFeatures>,
    encoder: Option<Arc<TextEncoder>>,
    tokenizer: ClipTokenizer,
    /// Normalised features already computed, by word (`""` = the normal state).
    memo: Mutex<HashMap<String, Vec<f32>>>,
}

impl DapoPromptBank {
    /// Loads a bank for the model `model`: it must have been made for that model (same `model_id`) and match its
    /// dimensions. The model's text encoder is loaded so new words can be added.
    pub fn load(path: &Path, model: &ModelDir) -> Result<Self> {
        let bytes = model.limits().read_file(path)?;
        Self::from_bytes(&bytes, path, model)
    }

    /// The embedded default bank (feature `default-model`), for `model`: the embedded default model, or any
    /// model with the same `model_id`. Errors name `<embedded default model>/bank.safetensors`.
    #[cfg(feature = "default-model")]
    pub fn embedded(model: &ModelDir) -> Result<Self> {
        let bank = loupe_default_model::bank();
        Self::from_bytes(bank.bytes, &memory_label(EMBEDDED_LABEL, bank.name), model)
    }

    /// [`load`](Self::load) from the bank file's bytes; `origin` (a path or an in-memory label) names it in errors
    /// and [`path`](Self::path).
    pub fn from_bytes(bytes: &[u8], origin: &Path, model: &ModelDir) -> Result<Self> {
        let encoder = Arc::new(TextEncoder::load(model)?);
        Self::from_bytes_with_encoder(bytes, origin, &model.meta.model_id, Some(encoder))
    }

    /// Loads a bank checked against `model_id`; without an encoder it serves only its cached words.
    pub fn load_with_encoder(path: &Path, model_id: &str, encoder: Option<Arc<TextEncoder>>) -> Result<Self> {
        let bytes = loupe_sdk::Limits::default().read_file(path)?;
        Self::from_bytes_with_encoder(&bytes, path, model_id, encoder)
    }

    /// [`load_with_encoder`](Self::load_with_encoder) from the bank file's bytes; `path` (the file, or an in-memory
    /// label) names it in errors.
    pub fn from_bytes_with_encoder(
        bytes: &[u8],
        path: &Path,
        model_id: &str,
        encoder: Option<Arc<TextEncoder>>,
    ) -> Result<Self> {
        let bad = |reason: String| LoupeError::bank(path, reason);
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let field = |k: &str| meta.get(k).cloned().ok_or_else(|| bad(format!("metadata field `{k}` missing")));
        let format = field("format")?;
        if format != "loupe-prompt-bank" {
            return Err(bad(format!("metadata field `format`: expected \"loupe-prompt-bank\", found {format:?}")));
        }
        let version = field("format_version")?;
        if version != "1" {
            return Err(bad(format!("metadata field `format_version`: expected 1, found {version}")));
        }
        let bank_model = field("model_id")?;
        if bank_model != model_id {
            return Err(bad(format!(
                "made for another backbone: metadata field `model_id`: expected {model_id} (the loaded model), found {bank_model}"
            )));
        }
        let parse = |k: &str| -> Result<usize> {
            let v = field(k)?;
            v.parse().map_err(|_| bad(format!("metadata field `{k}`: expected an integer, found {v:?}")))
        };
        let dim = parse("embed_dim")?;
        let width = parse("text_width")?;
        let words_json = field("words")?;
        let words: Vec<String> = serde_json::from_str(&words_json)
            .map_err(|e| bad(format!("metadata field `words`: expected a JSON list of strings ({e})")))?;
        if let Some(enc) = &encoder {
            if enc.embed_dim != dim {
                return Err(bad(format!(
                    "metadata field `embed_dim`: expected {} (the model's), found {dim}",
                    enc.embed_dim
                )));
            }
            if enc.tower.width != width {
                return Err(bad(format!(
                    "metadata field `text_width`: expected {} (the model's), found {width}",
                    enc.tower.width
                )));
            }
            // A bank laid out for one convention gives wrong features under the other: refuse the mix.
            let convention = meta.get("prompt_convention").map_or("loupe", String::as_str);
            let want = enc.tower.prompt_convention.as_str();
            if convention != want {
                return Err(bad(format!(
                    "metadata field `prompt_convention`: expected {want:?} (the model's text.prompt_convention), found {convention:?}"
                )));
            }
        }
        let st = SafeTensors::deserialize(bytes).map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let context = |name: &str| -> Result<Context> {
            let view = st.tensor(name).map_err(|_| bad(format!("tensor `{name}` missing")))?;
            let shape = view.shape().to_vec();
            if shape.len() != 3 || shape[2] != width || shape[0] == 0 {
                return Err(bad(format!("tensor `{name}`: expected shape [groups, n_ctx, {width}], found {shape:?}")));
            }
            Ok(Context { data: tensor_f32(&st, name, None).map_err(bad)?, groups: shape[0], n_ctx: shape[1] })
        };
        let normal = context("normal_context")?;
        let defect = context("defect_context")?;
        if normal.groups != defect.groups {
            return Err(bad(format!(
                "tensor `defect_context`: expected {} groups like `normal_context`, found {}",
                normal.groups, defect.groups
            )));
        }
        let deep = match &encoder {
            Some(enc) if enc.tower.deep_prompts > 0 => {
                let shape = [enc.tower.deep_layers(), enc.tower.deep_prompts, width];
                Some(tensor_f32(&st, "text_deep_prompts", Some(&shape)).map_err(bad)?)
            }
            _ => None,
        };
        let cached = if st.names().contains(&"text_features") {
            let rows = tensor_f32(&st, "text_features", Some(&[1 + words.len(), dim])).map_err(bad)?;
            Some(TextFeatures::new(words.clone(), dim, rows)?)
        } else {
            None
        };
        if encoder.is_none() && cached.is_none() {
            return Err(bad(
                "has no cached `text_features` and no text encoder was given: it cannot produce any text matrix".into(),
            ));
        }
        Ok(Self {
            path: path.to_path_buf(),
            name: meta
                .get("name")
                .cloned()
                .unwrap_or_else(|| path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()),
            model_id: bank_model,
            dim,
            words,
            normal_suffix: meta.get("normal_suffix").cloned().unwrap_or_else(|| "flawless object".into()),
            defect_suffix: meta.get("defect_suffix").cloned().unwrap_or_else(|| "anomaly object".into()),
            normal,
            defect,
            deep,
            cached,
            encoder,
            tokenizer: ClipTokenizer,
            memo: Mutex::new(HashMap::new()),
        })
    }

    /// The file it was loaded from (for a bank loaded from bytes, the `origin` it was given, such as
    /// `<embedded default model>/bank.safetensors`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Embeds the hybrid prompt of group `g`: `[SOT] [deep placeholders] [ctx] body [EOT] [pad]` (no placeholders in
    /// the DAPO authors' convention, whose encoder inserts the deep prompts), where `body`
    /// holds the word's tokens (if any) and the suffix's, already fitted by [`fit_body`].
    fn embed(&self, enc: &TextEncoder, ctx: &Context, g: usize, body: &[u32]) -> EmbeddedPrompt {
        let t = &enc.tower;
        let w = t.width;
        let mut e = Vec::with_capacity(t.context_length * w);
        e.extend_from_slice(enc.token(t.sot_token));
        e.resize(e.len() + t.placeholders() * w, 0.0);
        e.extend_from_slice(ctx.group(g, w));
        for &id in body {
            e.extend_from_slice(enc.token(id));
        }
        let eot_index = e.len() / w;
        e.extend_from_slice(enc.token(t.eot_token));
        while e.len() < t.context_length * w {
            e.extend_from_slice(enc.token(0));
        }
        EmbeddedPrompt { embeddings: e, eot_index }
    }

    /// Normalised mean over groups of the encoded prompts of each state (`None` = normal).
    fn encode_states(&self, enc: &TextEncoder, states: &[Option<&str>]) -> Result<Vec<Vec<f32>>> {
        let groups = self.normal.groups;
        let t = &enc.tower;
        let mut prompts = Vec::with_capacity(states.len() * groups);
        for state in states {
            let (ctx, word, suffix) = match state {
                None => (&self.normal, Vec::new(), &self.normal_suffix),
                Some(word) => (&self.defect, self.tokenizer.encode(word), &self.defect_suffix),
            };
            let room = t.context_length.saturating_sub(2 + t.placeholders() + ctx.n_ctx);
            let body = fit_body(&word, &self.tokenizer.encode(suffix), room).map_err(|reason| {
                LoupeError::Vocabulary(format!(
                    "{} prompt of `{}`: {reason}",
                    self.path.display(),
                    state.unwrap_or("normal")
                ))
            })?;
            for g in 0..groups {
                prompts.push(self.embed(enc, ctx, g, &body));
            }
        }
        let out = enc.encode(&prompts, self.deep.as_deref())?;
        let d = self.dim;
        Ok(out
            .chunks(groups * d)
            .map(|state| {
                let mut mean = vec![0.0f32; d];
                for row in state.chunks(d) {
                    mean.iter_mut().zip(row).for_each(|(m, x)| *m += x / groups as f32);
                }
                normalize(&mut mean);
                mean
            })
            .collect())
    }
}

/// The tokens between the context and EOT: the word's tokens cut so that the suffix and EOT still fit in the
/// `room` positions left (as `tools/loupe_tools/prompts.py` does); an error if even the suffix does not fit.
fn fit_body(word: &[u32], suffix: &[u32], room: usize) -> std::result::Result<Vec<u32>, String> {
    let for_word = room.checked_sub(suffix.len()).ok_or_else(|| {
        format!("the suffix needs {} token positions, the context length leaves {room}", suffix.len())
    })?;
    Ok(word.iter().take(for_word).chain(suffix).copied().collect())
}

impl PromptBank for DapoPromptBank {
    fn info(&self) -> ComponentInfo {
        ComponentInfo { kind: "dapo-prompt-bank".into(), name: self.name.clone(), id: self.model_id.clone() }
    }

    fn backbone_id(&self) -> &str {
        &self.model_id
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn trained_words(&self) -> &[String] {
        &self.words
    }

    fn can_add_words(&self) -> bool {
        self.encoder.is_some()
    }

    fn text_features(&self, words: &[String]) -> Result<TextFeatures> {
        let Some(enc) = &self.encoder else {
            let cached =
                self.cached.as_ref().ok_or_else(|| LoupeError::Vocabulary("bank has no text matrix".into()))?;
            return cached.select(words).map_err(|e| {
                LoupeError::Vocabulary(format!(
                    "{e}; bank {} has no text encoder, so it cannot add words",
                    self.path.display()
                ))
            });
        };
        let mut memo =
            self.memo.lock().map_err(|_| LoupeError::inference("prompt bank", "a previous call panicked"))?;
        let keys: Vec<String> = std::iter::once(String::new()).chain(words.iter().cloned()).collect();
        let missing: Vec<&String> = keys.iter().filter(|k| !memo.contains_key(*k)).collect();
        if !missing.is_empty() {
            let states: Vec<Option<&str>> =
                missing.iter().map(|k| if k.is_empty() { None } else { Some(k.as_str()) }).collect();
            let features = self.encode_states(enc, &states)?;
            for (k, f) in missing.into_iter().zip(features) {
                memo.insert(k.clone(), f);
            }
        }
        let rows = keys.iter().flat_map(|k| memo[k].iter().copied()).collect();
        TextFeatures::new(words.to_vec(), self.dim, rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_words_are_cut_and_the_suffix_kept() {
        assert_eq!(fit_body(&[1, 2, 3], &[8, 9], 10).unwrap(), vec![1, 2, 3, 8, 9]);
        assert_eq!(fit_body(&[1, 2, 3], &[8, 9], 4).unwrap(), vec![1, 2, 8, 9]);
        assert_eq!(fit_body(&[1, 2, 3], &[8, 9], 2).unwrap(), vec![8, 9]);
        assert!(fit_body(&[1], &[8, 9], 1).unwrap_err().contains("suffix"));
    }
}
