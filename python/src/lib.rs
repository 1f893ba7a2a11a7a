//! `import loupe`: Loupe's engine for Python over NumPy arrays.
//!
//! An [`Engine`] is built once (embedded default model, or a model directory, bank, configuration file and
//! profile) and inspects `uint8` images (gray, RGB, BGR, RGBA, BGRA) or `uint16` gray images given as NumPy arrays,
//! C-contiguous or strided, with the GIL released while the model runs. Results carry anomalib's names
//! (`pred_score`, `pred_label`, `anomaly_map`, `pred_mask`) beside Loupe's own. Loupe's errors are raised as
//! `loupe.LoupeError` with Loupe's message. The stubs are `python/python/loupe/__init__.pyi`.

use std::path::PathBuf;
use std::sync::Arc;

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray2, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use loupe_sdk::outputs::write_image_outputs;
use loupe_sdk::report::ImageReport;
use loupe_sdk::{BoundProfile, Detection, ImageView, LoupeConfig, LoupeError as SdkError, OwnedImage, PixelFormat};

pyo3::create_exception!(
    loupe,
    LoupeError,
    PyException,
    "An error reported by Loupe; the message names what was wrong and where."
);

fn raise(e: SdkError) -> PyErr {
    LoupeError::new_err(e.to_string())
}

/// What is wrong with an array given as an image (the caller names which one).
fn bad_image(what: String) -> String {
    format!("image: {what}")
}

/// An image copied out of a NumPy array, packed, in the format Loupe reads. Copied while the GIL is held: once it
/// is released another Python thread could write to the array during inference.
struct Pixels {
    data: Vec<u8>,
    width: u32,
    height: u32,
    format: PixelFormat,
}

impl Pixels {
    fn view(&self) -> Result<ImageView<'_>, SdkError> {
        ImageView::packed(&self.data, self.width, self.height, self.format)
    }
}

/// The pixel format named by `format` (or guessed from the array's shape and type) for an array of `channels`.
fn pixel_format(format: Option<&str>, channels: usize, is_u16: bool, bits: u8) -> Result<PixelFormat, String> {
    let guess = match (is_u16, channels) {
        (true, 1) => "gray16",
        (true, _) => return Err(bad_image(format!("uint16 arrays must be gray (H, W); found {channels} channels"))),
        (false, 1) => "gray",
        (false, 3) => "rgb",
        (false, 4) => "rgba",
        (false, c) => return Err(bad_image(format!("expected 1, 3 or 4 channels; found {c}"))),
    };
    let name = format.unwrap_or(guess).to_ascii_lowercase();
    let (pf, needs) = match name.as_str() {
        "gray" | "grey" | "l" => (PixelFormat::Gray8, 1),
        "gray16" => (PixelFormat::Gray16 { bits }, 1),
        "rgb" => (PixelFormat::Rgb8, 3),
        "bgr" => (PixelFormat::Bgr8, 3),
        "rgba" => (PixelFormat::Rgba8, 4),
        "bgra" => (PixelFormat::Bgra8, 4),
        other => {
            return Err(bad_image(format!(
                "unknown format `{other}`; expected one of gray, rgb, bgr, rgba, bgra (uint8) or gray16 (uint16)"
            )));
        }
    };
    if needs != channels || matches!(pf, PixelFormat::Gray16 { .. }) != is_u16 {
        let dtype = if is_u16 { "uint16" } else { "uint8" };
        return Err(bad_image(format!("format `{name}` does not fit a {dtype} array with {channels} channel(s)")));
    }
    pf.validate().map_err(|e| bad_image(e.to_string()))?;
    Ok(pf)
}

/// Reads a `uint8` (H, W), (H, W, C) or `uint16` (H, W) array, any strides, into packed pixels.
fn pixels(array: &Bound<'_, PyAny>, format: Option<&str>, bits: u8) -> Result<Pixels, String> {
    let (data, shape, is_u16) = if let Ok(a) = array.extract::<PyReadonlyArrayDyn<'_, u8>>() {
        // `iter()` walks the array in logical (C) order whatever its strides: a ROI or a transposed view reads
        // as the image it shows.
        (a.as_array().iter().copied().collect::<Vec<u8>>(), a.shape().to_vec(), false)
    } else if let Ok(a) = array.extract::<PyReadonlyArrayDyn<'_, u16>>() {
        let bytes = a.as_array().iter().flat_map(|v| v.to_ne_bytes()).collect();
        (bytes, a.shape().to_vec(), true)
    } else {
        let found = array.getattr("dtype").map(|d| d.to_string()).unwrap_or_else(|_| array.get_type().to_string());
        return Err(bad_image(format!("expected a NumPy array of uint8 (or uint16 gray); found {found}")));
    };
    let (height, width, channels) = match shape.as_slice() {
        [h, w] => (*h, *w, 1),
        [h, w, c] => (*h, *w, *c),
        other => return Err(bad_image(format!("expected shape (H, W) or (H, W, C); found {other:?}"))),
    };
    let format = pixel_format(format, channels, is_u16, bits)?;
    let dim = |v: usize, name: &str| {
        u32::try_from(v)
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| bad_image(format!("{name} {v}: expected 1 to {}", u32::MAX)))
    };
    Ok(Pixels { data, width: dim(width, "width")?, height: dim(height, "height")?, format })
}

/// A loaded model, prompt bank and post-processor, with an optional product profile; inspects NumPy images.
#[pyclass(frozen, module = "loupe")]
struct Engine {
    engine: Arc<loupe_sdk::Engine>,
    profile: Option<Arc<BoundProfile>>,
}

#[pymethods]
impl Engine {
    /// Builds an engine: the embedded default model when neither `config` nor `model` names one. `config` is a
    /// configuration file (TOML, JSON, YAML; `LOUPE_*` environment variables apply as for the CLI); `model`,
    /// `bank`, `defects`, `image_threshold` and `pixel_threshold` override its fields; `profile` is a product
    /// profile file used for every inspection.
    #[new]
    #[pyo3(signature = (config=None, *, model=None, bank=None, profile=None, defects=None, image_threshold=None, pixel_threshold=None))]
    #[allow(clippy::too_many_arguments)] // Python keyword arguments, one per configuration field.
    fn new(
        py: Python<'_>,
        config: Option<PathBuf>,
        model: Option<PathBuf>,
        bank: Option<PathBuf>,
        profile: Option<PathBuf>,
        defects: Option<Vec<String>>,
        image_threshold: Option<f32>,
        pixel_threshold: Option<f32>,
    ) -> PyResult<Self> {
        py.detach(move || {
            let mut cfg = LoupeConfig::load(config.as_deref())?;
            if model.is_some() {
                cfg.model.dir = model;
            }
            if bank.is_some() {
                cfg.prompts.bank = bank;
            }
            if defects.is_some() {
                cfg.prompts.defects = defects;
            }
            if let Some(t) = image_threshold {
                cfg.postprocess.image_threshold = t;
            }
            if pixel_threshold.is_some() {
                cfg.postprocess.pixel_threshold = pixel_threshold;
            }
            // One schema validation of the result, as the CLI does after its flags.
            let value = serde_json::to_value(&cfg)
                .map_err(|e| SdkError::ConfigSyntax { file: None, message: e.to_string() })?;
            let cfg = LoupeConfig::from_value(&value, config.as_deref())?;
            let engine = Arc::new(loupe_dapo::build_engine(&cfg)?);
            let profile = match profile {
                Some(path) => Some(engine.load_profile(&path)?),
                None => engine.default_profile().cloned(),
            };
            Ok(Self { engine, profile })
        })
        .map_err(raise)
    }

    /// Inspects one image: a NumPy array (H, W) or (H, W, C) of uint8, or (H, W) of uint16. `format`: `gray`,
    /// `rgb` (the default for 3 channels), `bgr` (OpenCV), `rgba` (default for 4), `bgra`, `gray16` (uint16, with
    /// `bits` significant bits).
    #[pyo3(signature = (image, *, format=None, bits=16))]
    fn inspect(
        &self,
        py: Python<'_>,
        image: &Bound<'_, PyAny>,
        format: Option<&str>,
        bits: u8,
    ) -> PyResult<InspectResult> {
        let px = pixels(image, format, bits).map_err(LoupeError::new_err)?;
        self.run_one(py, px)
    }

    /// Inspects several images in one call (the model runs on batches of `engine.batch_size`; with mutual
    /// scoring configured, each image is scored against the others). Same arguments as `inspect`, applied to all.
    #[pyo3(signature = (images, *, format=None, bits=16))]
    fn inspect_batch(
        &self,
        py: Python<'_>,
        images: &Bound<'_, PyAny>,
        format: Option<&str>,
        bits: u8,
    ) -> PyResult<Vec<InspectResult>> {
        let mut all = Vec::new();
        for (i, image) in images.try_iter()?.enumerate() {
            let image = image?;
            all.push(pixels(&image, format, bits).map_err(|e| LoupeError::new_err(format!("images[{i}]: {e}")))?);
        }
        self.run(py, &all)
    }

    /// Decodes an image file with Loupe's decoder (PNG, JPEG, BMP, TIFF) and inspects it, as `loupe inspect` does.
    /// With `out`, also writes the four files `loupe inspect` writes (`<stem>.json`, `<stem>_heatmap.png`,
    /// `<stem>_mask.png`, `<stem>_overlay.png`; `stem` defaults to the file's stem) into that existing folder,
    /// recording `path` as given as the image's name.
    #[pyo3(signature = (path, *, out=None, stem=None))]
    fn inspect_file(
        &self,
        py: Python<'_>,
        path: PathBuf,
        out: Option<PathBuf>,
        stem: Option<String>,
    ) -> PyResult<InspectResult> {
        let engine = self.engine.clone();
        let image = py.detach(|| OwnedImage::open_with_limits(&path, engine.limits())).map_err(raise)?;
        let pixels = Pixels { data: image.data, width: image.width, height: image.height, format: image.format };
        let result = self
            .run(py, std::slice::from_ref(&pixels))?
            .pop()
            .ok_or_else(|| LoupeError::new_err("engine: no result"))?;
        if let Some(out) = out {
            let stem = stem.unwrap_or_else(|| {
                path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "image".into())
            });
            let components = self.engine.components();
            py.detach(|| {
                let name = path.display().to_string();
                write_image_outputs(&out, &stem, &name, &pixels.view()?, &result.d, &components)
            })
            .map_err(raise)?;
        }
        Ok(result)
    }

    /// Class names: `normal`, then the defect words (index = type id in `type_map`).
    #[getter]
    fn classes(&self) -> Vec<String> {
        self.engine.text_features().class_names()
    }

    /// The model, prompt bank and post-processor, as `{"backbone": {...}, "prompt_bank": {...}, "postprocessor":
    /// {...}}` with each component's `kind`, `name` and `id`; plus `profile`, the product profile's name.
    #[getter]
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (key, c) in ["backbone", "prompt_bank", "postprocessor"].into_iter().zip(self.engine.components()) {
            let entry = PyDict::new(py);
            entry.set_item("kind", c.kind)?;
            entry.set_item("name", c.name)?;
            entry.set_item("id", c.id)?;
            d.set_item(key, entry)?;
        }
        d.set_item("profile", self.profile.as_ref().map(|p| p.name().to_string()))?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        let [backbone, bank, _] = self.engine.components();
        format!("loupe.Engine(backbone={:?}, prompt_bank={:?}, classes={:?})", backbone.name, bank.name, self.classes())
    }
}

impl Engine {
    /// Inspects one image with the GIL released.
    fn run_one(&self, py: Python<'_>, image: Pixels) -> PyResult<InspectResult> {
        let mut out = self.run(py, std::slice::from_ref(&image))?;
        out.pop().ok_or_else(|| LoupeError::new_err("engine: no result"))
    }

    /// Inspects `images` with the GIL released.
    fn run(&self, py: Python<'_>, images: &[Pixels]) -> PyResult<Vec<InspectResult>> {
        let (engine, profile) = (self.engine.clone(), self.profile.clone());
        let detections = py
            .detach(|| {
                let views = images.iter().map(Pixels::view).collect::<Result<Vec<_>, _>>()?;
                engine.inspect_with(&views, profile.as_deref())
            })
            .map_err(raise)?;
        Ok(detections.into_iter().map(|d| InspectResult { d, engine: self.engine.clone() }).collect())
    }
}

/// One connected region of the mask.
#[pyclass(frozen, get_all, module = "loupe")]
struct Region {
    /// `(x, y, width, height)` in map pixels.
    bbox: (u32, u32, u32, u32),
    /// Pixels in the region.
    area: u32,
    /// Most frequent defect type of its pixels.
    defect_type: String,
    /// Mean anomaly score over the region.
    mean_score: f32,
    /// Highest anomaly score in the region.
    max_score: f32,
}

#[pymethods]
impl Region {
    fn __repr__(&self) -> String {
        format!(
            "loupe.Region(bbox={:?}, area={}, defect_type={:?}, max_score={})",
            self.bbox, self.area, self.defect_type, self.max_score
        )
    }
}

/// The result of inspecting one image (`loupe.Result`).
#[pyclass(frozen, name = "Result", module = "loupe")]
struct InspectResult {
    d: Detection,
    engine: Arc<loupe_sdk::Engine>,
}

impl InspectResult {
    fn map<'py, T: numpy::Element + Clone>(&self, py: Python<'py>, data: &[T]) -> PyResult<Bound<'py, PyArray2<T>>> {
        let (w, h) = (self.d.anomaly_map.width, self.d.anomaly_map.height);
        let a = Array2::from_shape_vec((h, w), data.to_vec())
            .map_err(|e| LoupeError::new_err(format!("result map of {} values for {w} x {h}: {e}", data.len())))?;
        Ok(a.into_pyarray(py))
    }
}

#[pymethods]
impl InspectResult {
    /// Image anomaly score (anomalib's name): the raw score Loupe's JSON reports as `score`.
    #[getter]
    fn pred_score(&self) -> f32 {
        self.d.score
    }

    /// Whether the image is anomalous: `pred_score > thresholds["image"]` (anomalib's name).
    #[getter]
    fn pred_label(&self) -> bool {
        self.d.is_anomalous
    }

    /// Per-pixel anomaly score, float32 (H, W) at the map size (anomalib's name).
    #[getter]
    fn anomaly_map<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        self.map(py, &self.d.anomaly_map.data)
    }

    /// The defect mask, bool (H, W) (anomalib's name); all False for images labelled normal by default.
    #[getter]
    fn pred_mask<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<bool>>> {
        let mask: Vec<bool> = self.d.mask.iter().map(|&v| v != 0).collect();
        self.map(py, &mask)
    }

    /// The score on a scale where the image threshold is 0.5, in [0, 1].
    #[getter]
    fn normalized_score(&self) -> f32 {
        self.d.normalized_score
    }

    /// Most probable defect type of the image.
    #[getter]
    fn image_type(&self) -> String {
        self.d.image_type.clone()
    }

    /// Per-pixel type id, uint16 (H, W): 0 outside the mask, else an index into `classes`.
    #[getter]
    fn type_map<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<u16>>> {
        self.map(py, &self.d.type_map)
    }

    /// Class names: `normal`, then the defect words.
    #[getter]
    fn classes(&self) -> Vec<String> {
        self.d.classes.clone()
    }

    /// Image-level probability of each class, `{name: probability}`.
    #[getter]
    fn class_probabilities<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (name, p) in self.d.classes.iter().zip(&self.d.class_probabilities) {
            d.set_item(name, p)?;
        }
        Ok(d)
    }

    /// Connected regions of the mask, largest evidence first as Loupe orders them.
    #[getter]
    fn regions<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let regions = self.d.regions.iter().map(|r| Region {
            bbox: (r.bbox[0], r.bbox[1], r.bbox[2], r.bbox[3]),
            area: r.area,
            defect_type: r.defect_type.clone(),
            mean_score: r.mean_score,
            max_score: r.max_score,
        });
        PyList::new(py, regions.map(|r| Py::new(py, r)).collect::<PyResult<Vec<_>>>()?)
    }

    /// The thresholds used: `{"image": ..., "pixel": ...}`.
    #[getter]
    fn thresholds<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("image", self.d.thresholds.image)?;
        d.set_item("pixel", self.d.thresholds.pixel)?;
        Ok(d)
    }

    /// Top of the anomaly map's range (the heatmap's colour scale).
    #[getter]
    fn map_range(&self) -> f32 {
        self.d.map_range
    }

    /// Which evidence the score rests on: `text`, `golden` or `mutual`.
    #[getter]
    fn mode(&self) -> &'static str {
        self.d.evidence.mode.name()
    }

    /// The JSON document `loupe inspect` writes for this result, with `image` as the image's name.
    #[pyo3(signature = (image=""))]
    fn to_json(&self, image: &str) -> PyResult<String> {
        let report = ImageReport::new(
            image.to_string(),
            &self.d,
            self.d.map_range,
            &self.engine.components(),
            Default::default(),
        );
        serde_json::to_string_pretty(&report).map_err(|e| LoupeError::new_err(format!("result JSON: {e}")))
    }

    fn __repr__(&self) -> String {
        format!(
            "loupe.Result(pred_score={}, pred_label={}, image_type={:?}, regions={}, mode={:?})",
            self.d.score,
            if self.d.is_anomalous { "True" } else { "False" },
            self.d.image_type,
            self.d.regions.len(),
            self.mode()
        )
    }
}

/// The extension module `loupe._loupe` (re-exported by `python/python/loupe/__init__.py`): `Engine`, `Result`,
/// `Region`, `LoupeError`, `__version__`.
#[pymodule]
#[pyo3(name = "_loupe")]
fn loupe_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Engine>()?;
    m.add_class::<InspectResult>()?;
    m.add_class::<Region>()?;
    m.add("LoupeError", m.py().get_type::<LoupeError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
