//! The profile file: safetensors with the memory as tensors and the rest as JSON metadata.

use std::collections::HashMap;
use std::path::Path;

use loupe_reference::{Memory, MemoryLayer};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use super::{FORMAT, FORMAT_VERSION, Profile, ProfileMeta};
use crate::error::{LoupeError, Result};
use crate::limits::Limits;

fn rows_name(l: usize) -> String {
    format!("memory.{l}.rows")
}

fn owners_name(l: usize) -> String {
    format!("memory.{l}.owners")
}

/// Writes `profile` to `path`.
pub(super) fn write(profile: &Profile, path: &Path) -> Result<()> {
    let bad = |reason: String| LoupeError::Profile { path: path.to_path_buf(), reason };
    let json = serde_json::to_string(&profile.meta).map_err(|e| bad(format!("cannot encode the metadata: {e}")))?;
    let metadata: HashMap<String, String> = [
        ("format".to_string(), FORMAT.to_string()),
        ("format_version".to_string(), FORMAT_VERSION.to_string()),
        ("profile".to_string(), json),
    ]
    .into_iter()
    .collect();
    let mut buffers: Vec<(String, Vec<usize>, Dtype, Vec<u8>)> = Vec::new();
    if let Some(memory) = &profile.memory {
        for (l, layer) in memory.layers().iter().enumerate() {
            let rows: Vec<u8> = layer.rows().iter().flat_map(|v| v.to_le_bytes()).collect();
            let owners: Vec<u8> = layer.owners().iter().flat_map(|v| v.to_le_bytes()).collect();
            buffers.push((rows_name(l), vec![layer.len(), memory.dim()], Dtype::F32, rows));
            buffers.push((owners_name(l), vec![layer.len()], Dtype::U32, owners));
        }
    }
    let views = buffers
        .iter()
        .map(|(name, shape, dtype, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes).map(|v| (name.clone(), v)).map_err(|e| bad(e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize_to_file(views, Some(metadata), path).map_err(|e| match e {
        safetensors::SafeTensorError::IoError(io) => LoupeError::io(path, io),
        other => bad(format!("cannot write: {other}")),
    })
}

/// Reads and checks a profile file.
pub(super) fn read(path: &Path, limits: &Limits) -> Result<Profile> {
    let bytes = limits.read_file(path)?;
    parse(&bytes).map_err(|reason| LoupeError::Profile { path: path.to_path_buf(), reason })
}

/// Parses profile bytes; the error is the reason, without the file name.
pub(super) fn parse(bytes: &[u8]) -> std::result::Result<Profile, String> {
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| format!("not a Loupe profile (not a safetensors file, or truncated): {e}"))?;
    let meta = header.metadata().clone().unwrap_or_default();
    let field = |k: &str| meta.get(k).ok_or_else(|| format!("metadata field `{k}` missing (not a Loupe profile?)"));
    let format = field("format")?;
    if format != FORMAT {
        return Err(format!("metadata field `format`: expected \"{FORMAT}\", found {format:?}"));
    }
    let version = field("format_version")?;
    if version.parse::<u32>().ok() != Some(FORMAT_VERSION) {
        return Err(format!("metadata field `format_version`: expected {FORMAT_VERSION}, found {version:?}"));
    }
    let profile: ProfileMeta =
        serde_json::from_str(field("profile")?).map_err(|e| format!("metadata field `profile`: {e}"))?;
    if profile.layers == 0 || profile.dim == 0 {
        return Err(format!(
            "metadata field `profile`: expected layers and dim > 0, found {} layers x dim {}",
            profile.layers, profile.dim
        ));
    }
    let st = SafeTensors::deserialize(bytes).map_err(|e| format!("tensors unreadable (truncated file?): {e}"))?;
    let memory = match &profile.references {
        None => {
            if !st.names().is_empty() {
                return Err("holds memory tensors but its metadata records no references".into());
            }
            None
        }
        Some(info) => {
            if info.rows_per_layer.len() != profile.layers {
                return Err(format!(
                    "metadata `references.rows_per_layer`: expected {} entries (one per layer), found {}",
                    profile.layers,
                    info.rows_per_layer.len()
                ));
            }
            if !(info.scale.is_finite() && info.scale > 0.0) {
                return Err(format!("metadata `references.scale`: expected a positive number, found {}", info.scale));
            }
            let mut layers = Vec::with_capacity(profile.layers);
            for (l, &n) in info.rows_per_layer.iter().enumerate() {
                let rows = tensor(&st, &rows_name(l), Dtype::F32, &[n, profile.dim])?;
                let owners = tensor(&st, &owners_name(l), Dtype::U32, &[n])?;
                let rows: Vec<f32> =
                    rows.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
                let owners: Vec<u32> =
                    owners.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
                if let Some(&o) = owners.iter().find(|&&o| o as usize >= info.images.len()) {
                    return Err(format!(
                        "tensor `{}`: owner {o} is not one of the {} reference images",
                        owners_name(l),
                        info.images.len()
                    ));
                }
                layers.push(MemoryLayer::new(rows, owners, profile.dim).map_err(|e| format!("layer {l}: {e}"))?);
            }
            Some(Memory::from_layers(layers, profile.dim).map_err(|e| e.to_string())?)
        }
    };
    Ok(Profile { meta: profile, memory })
}

/// The bytes of tensor `name`, checked for dtype and shape.
fn tensor<'a>(
    st: &'a SafeTensors<'a>,
    name: &str,
    dtype: Dtype,
    shape: &[usize],
) -> std::result::Result<&'a [u8], String> {
    let view = st.tensor(name).map_err(|_| format!("tensor `{name}` missing"))?;
    if view.dtype() != dtype || view.shape() != shape {
        return Err(format!(
            "tensor `{name}`: expected {dtype:?} {shape:?}, found {:?} {:?}",
            view.dtype(),
            view.shape()
        ));
    }
    Ok(view.data())
}
