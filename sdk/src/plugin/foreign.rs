//! Host side: components that live in a plugin, seen through their C tables as ordinary trait objects.
//! Each instance holds its library, so the code it calls cannot be unloaded under it.

use std::ffi::{CString, c_char, c_void};
use std::sync::Arc;

use super::abi::*;
use super::error_buf::{HostErrorBuf, read_str};
use super::guest::format_code;
use crate::config::LoupeConfig;
use crate::detection::{Detection, Evidence, ScoreMap, Thresholds};
use crate::error::{LoupeError, Result};
use crate::features::{ImageFeatures, TextFeatures};
use crate::fusion::normalized_score;
use crate::image_input::ImageView;
use crate::regions::extract_regions;
use crate::thresholding::SegmentRule;
use crate::traits::{Backbone, ComponentInfo, InputGeometry, PostProcessor, PostprocessRequest, PromptBank};

/// What keeps a plugin's code alive (its library handle) and names it in errors.
#[derive(Clone)]
pub struct Provenance {
    /// The loaded library; never unloaded while this lives.
    pub library: Arc<libloading::Library>,
    /// Component name.
    pub component: String,
}

impl Provenance {
    fn fail(&self, what: &str, err: &HostErrorBuf) -> LoupeError {
        LoupeError::Component { component: self.component.clone(), message: format!("{what}: {}", err.message()) }
    }

    fn missing(&self, what: &str) -> LoupeError {
        LoupeError::Component { component: self.component.clone(), message: format!("table has no `{what}` function") }
    }
}

/// Calls a plugin function with a fresh error buffer, turning a non-zero status into an error.
fn call(p: &Provenance, what: &str, f: impl FnOnce(*mut LoupeErrorBuf) -> i32) -> Result<()> {
    let mut err = HostErrorBuf::default();
    let mut raw = err.raw();
    if f(&mut raw) == LOUPE_PLUGIN_OK { Ok(()) } else { Err(p.fail(what, &err)) }
}

fn config_json(cfg: &LoupeConfig) -> Result<CString> {
    let text = serde_json::to_string(cfg).map_err(|e| LoupeError::inference("configuration to JSON", e))?;
    CString::new(text).map_err(|e| LoupeError::inference("configuration to JSON", e))
}

fn create(
    p: &Provenance,
    f: LoupeCreateFn,
    destroy: LoupeDestroyFn,
    user_data: *mut c_void,
    cfg: &LoupeConfig,
) -> Result<Instance> {
    let f = f.ok_or_else(|| p.missing("create"))?;
    let json = config_json(cfg)?;
    let mut instance = std::ptr::null_mut();
    // SAFETY: arguments follow the ABI; the plugin fills `instance` on success.
    call(p, "create", |err| unsafe { f(user_data, json.as_ptr(), &mut instance, err) })?;
    if instance.is_null() {
        return Err(LoupeError::Component {
            component: p.component.clone(),
            message: "create returned no instance".into(),
        });
    }
    Ok(Instance { ptr: instance, destroy })
}

/// A plugin instance, destroyed through its table's `destroy` exactly once, when dropped.
struct Instance {
    ptr: *mut c_void,
    destroy: LoupeDestroyFn,
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(d) = self.destroy {
            // SAFETY: the pointer `create` returned, destroyed once.
            unsafe { d(self.ptr) };
        }
    }
}

/// Index of the first NaN or infinity in `v`.
fn non_finite(v: &[f32]) -> Option<usize> {
    v.iter().position(|x| !x.is_finite())
}

fn owned(ptr: *const c_char) -> String {
    // SAFETY: the plugin returns strings valid while the instance lives; we copy at once.
    unsafe { read_str(ptr) }.unwrap_or_default().to_string()
}

/// A plugin backbone.
pub struct ForeignBackbone {
    table: LoupeBackboneTable,
    instance: Instance,
    geometry: InputGeometry,
    info: ComponentInfo,
    provenance: Provenance,
}

// SAFETY: the ABI requires component instances to be thread-safe; the table is immutable.
unsafe impl Send for ForeignBackbone {}
// SAFETY: as above.
unsafe impl Sync for ForeignBackbone {}

impl ForeignBackbone {
    /// Creates an instance through the plugin's table.
    pub fn create(table: &LoupeBackboneTable, provenance: Provenance, cfg: &LoupeConfig) -> Result<Self> {
        let table = LoupeBackboneTable { ..*table };
        let instance = create(&provenance, table.create, table.destroy, table.user_data, cfg)?;
        let mut this = Self {
            table,
            instance,
            geometry: InputGeometry {
                input_size: [0, 0],
                mean: [0.0; 3],
                std: [1.0; 3],
                grid: [0, 0],
                feature_dim: 0,
                layers: 0,
            },
            info: ComponentInfo { kind: provenance.component.clone(), name: String::new(), id: String::new() },
            provenance,
        };
        let f = this.table.geometry.ok_or_else(|| this.provenance.missing("geometry"))?;
        // SAFETY: all-zero is a valid value of this plain C struct.
        let mut g: LoupeBackboneGeometry = unsafe { std::mem::zeroed() };
        // SAFETY: instance from `create`, `g` writable.
        call(&this.provenance, "geometry", |err| unsafe { f(this.instance.ptr, &mut g, err) })?;
        this.geometry = InputGeometry {
            input_size: [g.input_height, g.input_width],
            mean: g.mean,
            std: g.std,
            grid: [g.grid_height as usize, g.grid_width as usize],
            feature_dim: g.feature_dim as usize,
            layers: g.layers as usize,
        };
        this.info.id = owned(g.model_id);
        this.info.name = owned(g.model_name);
        Ok(this)
    }
}

impl Backbone for ForeignBackbone {
    fn info(&self) -> ComponentInfo {
        self.info.clone()
    }

    fn geometry(&self) -> &InputGeometry {
        &self.geometry
    }

    fn encode(&self, images: &[ImageView<'_>]) -> Result<Vec<ImageFeatures>> {
        let f = self.table.encode.ok_or_else(|| self.provenance.missing("encode"))?;
        let g = &self.geometry;
        let (n, d, cells) = (images.len(), g.feature_dim, g.grid[0] * g.grid[1]);
        let per = g.layers * cells * d;
        // Formats plugin ABI 1 does not know reach the plugin as packed RGB8 copies, kept alive for the call.
        let converted: Vec<(Option<image::RgbImage>, u32)> = images
            .iter()
            .map(|v| match format_code(v.format()) {
                Some(code) => (None, code),
                None => (Some(v.to_rgb()), LOUPE_PLUGIN_FORMAT_RGB8),
            })
            .collect();
        let raw: Vec<LoupePluginImage> = images
            .iter()
            .zip(&converted)
            .map(|(v, (rgb, format))| LoupePluginImage {
                data: rgb.as_ref().map_or(v.row(0).as_ptr(), |r| r.as_raw().as_ptr()),
                width: v.width(),
                height: v.height(),
                stride: rgb.as_ref().map_or(v.stride(), |_| 3 * v.width() as usize),
                format: *format,
            })
            .collect();
        let (mut global, mut patches) = (vec![0.0f32; n * d], vec![0.0f32; n * per]);
        // SAFETY: buffers sized per the geometry the plugin declared.
        call(&self.provenance, "encode", |err| unsafe {
            f(self.instance.ptr, raw.as_ptr(), n, global.as_mut_ptr(), patches.as_mut_ptr(), err)
        })?;
        // A NaN or an infinity would flow into every score of the image and decide nothing: a NaN score is never
        // above a threshold, so the part would pass as good. Refuse the call instead, naming where it is.
        for i in 0..n {
            let (glob, patch) = (&global[i * d..(i + 1) * d], &patches[i * per..(i + 1) * per]);
            let bad = non_finite(glob).map(|c| format!("its global feature holds {} at channel {c}", glob[c]));
            let bad = bad.or_else(|| {
                non_finite(patch).map(|k| {
                    let (l, cell, c) = (k / (cells * d), k / d % cells, k % d);
                    format!("its patch features hold {} at layer {l}, patch {cell}, channel {c}", patch[k])
                })
            });
            if let Some(what) = bad {
                return Err(LoupeError::Component {
                    component: self.provenance.component.clone(),
                    message: format!("encode: image {i} of a batch of {n}: {what} (features must be finite)"),
                });
            }
        }
        Ok((0..n)
            .map(|i| ImageFeatures {
                global: global[i * d..(i + 1) * d].to_vec(),
                patches: patches[i * per..(i + 1) * per].to_vec(),
                layers: g.layers,
                grid_h: g.grid[0],
                grid_w: g.grid[1],
                dim: d,
            })
            .collect())
    }
}

/// A plugin prompt bank.
pub struct ForeignPromptBank {
    table: LoupePromptBankTable,
    instance: Instance,
    info: ComponentInfo,
    backbone_id: String,
    dim: usize,
    words: Vec<String>,
    can_add_words: bool,
    provenance: Provenance,
}

// SAFETY: the ABI requires component instances to be thread-safe; the table is immutable.
unsafe impl Send for ForeignPromptBank {}
// SAFETY: as above.
unsafe impl Sync for ForeignPromptBank {}

impl ForeignPromptBank {
    /// Creates an instance through the plugin's table.
    pub fn create(table: &LoupePromptBankTable, provenance: Provenance, cfg: &LoupeConfig) -> Result<Self> {
        let table = LoupePromptBankTable { ..*table };
        let instance = create(&provenance, table.create, table.destroy, table.user_data, cfg)?;
        let mut this = Self {
            table,
            instance,
            info: ComponentInfo { kind: provenance.component.clone(), name: String::new(), id: String::new() },
            backbone_id: String::new(),
            dim: 0,
            words: Vec::new(),
            can_add_words: false,
            provenance,
        };
        let f = this.table.describe.ok_or_else(|| this.provenance.missing("describe"))?;
        // SAFETY: all-zero is a valid value of this plain C struct.
        let mut info: LoupePromptBankInfo = unsafe { std::mem::zeroed() };
        // SAFETY: instance from `create`, `info` writable.
        call(&this.provenance, "describe", |err| unsafe { f(this.instance.ptr, &mut info, err) })?;
        this.info.name = owned(info.name);
        this.backbone_id = owned(info.backbone_id);
        this.info.id = this.backbone_id.clone();
        this.dim = info.dim as usize;
        this.can_add_words = info.can_add_words != 0;
        if !info.words.is_null() {
            // SAFETY: `word_count` strings per the ABI.
            let ptrs = unsafe { std::slice::from_raw_parts(info.words, info.word_count as usize) };
            this.words = ptrs.iter().map(|&p| owned(p)).collect();
        }
        Ok(this)
    }
}

impl PromptBank for ForeignPromptBank {
    fn info(&self) -> ComponentInfo {
        self.info.clone()
    }

    fn backbone_id(&self) -> &str {
        &self.backbone_id
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn trained_words(&self) -> &[String] {
        &self.words
    }

    fn can_add_words(&self) -> bool {
        self.can_add_words
    }

    fn text_features(&self, words: &[String]) -> Result<TextFeatures> {
        let f = self.table.text_features.ok_or_else(|| self.provenance.missing("text_features"))?;
        let c: Vec<CString> = words
            .iter()
            .map(|w| {
                CString::new(w.as_str()).map_err(|_| LoupeError::Vocabulary(format!("word {w:?} contains a NUL byte")))
            })
            .collect::<Result<_>>()?;
        let ptrs: Vec<*const c_char> = c.iter().map(|s| s.as_ptr()).collect();
        let mut rows = vec![0.0f32; (1 + words.len()) * self.dim];
        // SAFETY: `words.len()` strings in, `(1 + n) * dim` floats out.
        call(&self.provenance, "text_features", |err| unsafe {
            f(self.instance.ptr, ptrs.as_ptr(), ptrs.len(), rows.as_mut_ptr(), err)
        })?;
        Ok(TextFeatures { words: words.to_vec(), dim: self.dim, rows })
    }
}

/// A plugin post-processor; connected regions are computed by the host from the plugin's mask.
pub struct ForeignPostProcessor {
    table: LoupePostProcessorTable,
    instance: Instance,
    min_region_area: u32,
    segment: SegmentRule,
    provenance: Provenance,
}

// SAFETY: the ABI requires component instances to be thread-safe; the table is immutable.
unsafe impl Send for ForeignPostProcessor {}
// SAFETY: as above.
unsafe impl Sync for ForeignPostProcessor {}

impl ForeignPostProcessor {
    /// Creates an instance through the plugin's table.
    pub fn create(table: &LoupePostProcessorTable, provenance: Provenance, cfg: &LoupeConfig) -> Result<Self> {
        let table = LoupePostProcessorTable { ..*table };
        let instance = create(&provenance, table.create, table.destroy, table.user_data, cfg)?;
        Ok(Self {
            table,
            instance,
            min_region_area: cfg.postprocess.min_region_area,
            segment: cfg.postprocess.segment,
            provenance,
        })
    }
}

impl PostProcessor for ForeignPostProcessor {
    fn info(&self) -> ComponentInfo {
        ComponentInfo {
            kind: self.provenance.component.clone(),
            name: self.provenance.component.clone(),
            id: String::new(),
        }
    }

    fn process_request(&self, request: &PostprocessRequest<'_>, text: &TextFeatures) -> Result<Detection> {
        let f = self.table.process.ok_or_else(|| self.provenance.missing("process"))?;
        if request.reference.is_some() || request.thresholds.is_some() {
            // Plugin ABI 1 passes neither reference evidence nor per-call thresholds.
            return Err(LoupeError::Component {
                component: self.provenance.component.clone(),
                message: "a plugin post-processor (plugin ABI 1) cannot fuse reference evidence or take a profile's \
                          thresholds: use the built-in `dapo-postprocess` for profiles and mutual scoring"
                    .into(),
            });
        }
        let (features, output) = (request.features, request.output);
        let classes = text.class_names();
        let c: Vec<CString> = classes.iter().map(|s| CString::new(s.as_str()).unwrap_or_default()).collect();
        let names: Vec<*const c_char> = c.iter().map(|s| s.as_ptr()).collect();
        let (w, h) = (output.width, output.height);
        let mut probs = vec![0.0f32; classes.len()];
        let mut anomaly = vec![0.0f32; w * h];
        let mut mask = vec![0u8; w * h];
        let mut type_map = vec![0u16; w * h];
        let raw_features = LoupePluginFeatures {
            global: features.global.as_ptr(),
            patches: features.patches.as_ptr(),
            layers: features.layers as u32,
            grid_height: features.grid_h as u32,
            grid_width: features.grid_w as u32,
            dim: features.dim as u32,
        };
        let raw_text = LoupePluginText {
            rows: text.rows.as_ptr(),
            classes: classes.len() as u32,
            dim: text.dim as u32,
            class_names: names.as_ptr(),
        };
        let mut out = LoupePluginDetection {
            width: w as u32,
            height: h as u32,
            score: 0.0,
            image_threshold: 0.0,
            pixel_threshold: 0.0,
            image_type: 0,
            class_probabilities: probs.as_mut_ptr(),
            anomaly_map: anomaly.as_mut_ptr(),
            mask: mask.as_mut_ptr(),
            type_map: type_map.as_mut_ptr(),
        };
        // SAFETY: every buffer is sized as the ABI states.
        call(&self.provenance, "process", |err| unsafe {
            f(self.instance.ptr, &raw_features, &raw_text, &mut out, err)
        })?;
        let scalars =
            [("score", out.score), ("image_threshold", out.image_threshold), ("pixel_threshold", out.pixel_threshold)];
        let bad = scalars.iter().find(|(_, v)| !v.is_finite()).map(|(name, v)| format!("`{name}` {v}"));
        let bad = bad
            .or_else(|| non_finite(&probs).map(|k| format!("class probability {k} = {}", probs[k])))
            .or_else(|| non_finite(&anomaly).map(|i| format!("anomaly map value {} at pixel {i}", anomaly[i])));
        if let Some(what) = bad {
            return Err(LoupeError::Component {
                component: self.provenance.component.clone(),
                message: format!("process: returned a non-finite {what} (outputs must be finite)"),
            });
        }
        if type_map.iter().any(|&t| t as usize >= classes.len()) || out.image_type as usize >= classes.len() {
            return Err(LoupeError::Component {
                component: self.provenance.component.clone(),
                message: format!("returned a type id outside 0..{}", classes.len()),
            });
        }
        let anomaly_map = ScoreMap { width: w, height: h, data: anomaly };
        let is_anomalous = out.score > out.image_threshold;
        // The plugin makes its own mask (it may not be a threshold of its map); the segment rule still applies.
        if !is_anomalous && self.segment == SegmentRule::Anomalous {
            mask.fill(0);
            type_map.fill(0);
        }
        let regions = extract_regions(&mut mask, &mut type_map, &anomaly_map, &classes, self.min_region_area);
        Ok(Detection {
            score: out.score,
            normalized_score: normalized_score(out.score, out.image_threshold, 1.0),
            is_anomalous,
            image_type: classes[out.image_type as usize].clone(),
            classes,
            class_probabilities: probs,
            anomaly_map,
            class_maps: Vec::new(),
            type_map,
            // Its mask is its own: no per-pixel types to re-threshold with.
            pixel_types: Vec::new(),
            mask,
            regions,
            // The plugin's maps are read as DAPO's: the sum over layers of the defect probabilities.
            map_range: features.layers as f32,
            score_range: 1.0,
            thresholds: Thresholds { image: out.image_threshold, pixel: out.pixel_threshold },
            min_region_area: self.min_region_area,
            segment: self.segment,
            evidence: Evidence::text(out.score),
        })
    }
}
