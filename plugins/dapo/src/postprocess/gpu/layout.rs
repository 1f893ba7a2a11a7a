//! Where each image of a batch lies in the shared GPU buffers, and the per-image parameters of the kernels
//! (`Params` in `kernels.wgsl`). Offsets and lengths count f32/u32 elements.

use loupe_sdk::config::PostprocessConfig;
use loupe_sdk::{OutputSize, PostprocessRequest, TextFeatures};

use crate::postprocess::smoothing;
use crate::postprocess::upsample::{Axis, Bilinear};

/// Words in one `Params` record (28 x 4 = 112 bytes, a multiple of 16 as WGSL's struct layout wants).
pub(crate) const PARAMS_WORDS: usize = 28;

/// The kernels' view of one image, in the field order of `Params` in `kernels.wgsl`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Params {
    pub cells: u32,
    pub classes: u32,
    pub layers: u32,
    pub dim: u32,
    pub grid_w: u32,
    pub width: u32,
    pub height: u32,
    pub radius: u32,
    pub feat_off: u32,
    pub probs_off: u32,
    pub grids_off: u32,
    pub agrid_off: u32,
    pub map_off: u32,
    pub tmp_off: u32,
    pub types_off: u32,
    pub class_off: u32,
    pub xtaps_off: u32,
    pub ytaps_off: u32,
    pub gauss_off: u32,
    pub temperature: f32,
    pub text_off: u32,
    pub norm_off: u32,
    /// consts: per-cell reference terms (`ReferenceEvidence::terms`), when `fusion` is not 0.
    pub ref_off: u32,
    /// 0: text only; else 1 + the fusion rule's code (`FusionRule::code`).
    pub fusion: u32,
    /// The fusion's text weight.
    pub text_weight: f32,
}

impl Params {
    /// The record as the shader reads it.
    pub fn words(&self) -> [u32; PARAMS_WORDS] {
        [
            self.cells,
            self.classes,
            self.layers,
            self.dim,
            self.grid_w,
            self.width,
            self.height,
            self.radius,
            self.feat_off,
            self.probs_off,
            self.grids_off,
            self.agrid_off,
            self.map_off,
            self.tmp_off,
            self.types_off,
            self.class_off,
            self.xtaps_off,
            self.ytaps_off,
            self.gauss_off,
            self.temperature.to_bits(),
            0,
            self.text_off,
            self.norm_off,
            self.ref_off,
            self.fusion,
            self.text_weight.to_bits(),
            0,
            0,
        ]
    }
}

/// Element counts of every shared buffer for a batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sizes {
    /// Patch features.
    pub feats: usize,
    /// Text matrix, Gaussian weights, bilinear taps.
    pub consts: usize,
    /// Normalised (transposed) patch features, per-layer probabilities, class grids, anomaly grids.
    pub scratch: usize,
    /// Anomaly maps and their smoothing intermediates.
    pub maps: usize,
    /// Per-pixel type ids.
    pub types: usize,
    /// Per-class maps (0 when not kept).
    pub class_maps: usize,
    /// What is read back: anomaly maps, type ids, class maps.
    pub readback: usize,
}

impl Sizes {
    /// The largest buffer in bytes.
    pub fn largest_bytes(&self) -> u64 {
        let words = [self.feats, self.consts, self.scratch, self.maps, self.types, self.class_maps, self.readback];
        4 * words.into_iter().max().unwrap_or(0) as u64
    }

    /// Adds another image's needs.
    pub fn add(&mut self, o: &Sizes) {
        self.feats += o.feats;
        self.consts += o.consts;
        self.scratch += o.scratch;
        self.maps += o.maps;
        self.types += o.types;
        self.class_maps += o.class_maps;
        self.readback += o.readback;
    }
}

/// What one image needs, before offsets are assigned.
fn image_sizes(request: &PostprocessRequest<'_>, classes: usize, keep_class_maps: bool) -> Sizes {
    let (features, output) = (request.features, request.output);
    let cells = features.grid_w * features.grid_h;
    let pixels = output.width * output.height;
    let class_maps = if keep_class_maps { classes * pixels } else { 0 };
    let reference = if request.reference.is_some() { cells } else { 0 };
    Sizes {
        feats: features.layers * cells * features.dim,
        consts: 3 * (output.width + output.height) + reference,
        scratch: features.layers * cells * features.dim + features.layers * classes * cells + classes * cells + cells,
        maps: 2 * pixels,
        types: pixels,
        class_maps,
        readback: 2 * pixels + class_maps,
    }
}

/// What the device's limits are checked against: buffer sizes and dispatch extents of a batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct BatchShape {
    /// Element counts of the shared buffers.
    pub sizes: Sizes,
    /// Largest output map.
    pub max_width: usize,
    /// Largest output map.
    pub max_height: usize,
    /// Largest `layers * cells` (threads of the per-patch kernels).
    pub max_rows: usize,
    /// Images in the batch.
    pub images: usize,
    /// Classes (1 + K), the same for every image.
    pub classes: usize,
}

impl BatchShape {
    /// The shape of a batch of one image (the text matrix and Gaussian weights included).
    pub fn one(request: &PostprocessRequest<'_>, text: &TextFeatures, config: &PostprocessConfig) -> Self {
        let (features, output) = (request.features, request.output);
        let mut sizes = image_sizes(request, text.classes(), config.keep_class_maps);
        sizes.consts += text.rows.len() + smoothing_kernel(config.smoothing_sigma).len();
        Self {
            sizes,
            max_width: output.width,
            max_height: output.height,
            max_rows: features.layers * features.grid_w * features.grid_h,
            images: 1,
            classes: text.classes(),
        }
    }

    /// The shape of both batches together (counting the shared constants twice: a little over, on the safe side).
    pub fn with(&self, o: &BatchShape) -> Self {
        let mut sizes = self.sizes;
        sizes.add(&o.sizes);
        Self {
            sizes,
            max_width: self.max_width.max(o.max_width),
            max_height: self.max_height.max(o.max_height),
            max_rows: self.max_rows.max(o.max_rows),
            images: self.images + o.images,
            classes: self.classes.max(o.classes),
        }
    }

    /// The shape of a whole batch.
    pub fn of(batch: &[PostprocessRequest<'_>], text: &TextFeatures, config: &PostprocessConfig) -> Self {
        batch.iter().fold(Self::default(), |acc, r| acc.with(&Self::one(r, text, config)))
    }
}

/// Where one image's results lie in the read-back buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Readback {
    /// Anomaly map, `width * height` f32.
    pub anomaly: usize,
    /// Type ids, `width * height` u32.
    pub types: usize,
    /// Class maps, `classes * width * height` f32 (when kept).
    pub class_maps: usize,
}

/// One image in the batch.
#[derive(Clone, Debug)]
pub(crate) struct Slot {
    pub params: Params,
    pub output: OutputSize,
    pub readback: Readback,
}

/// The whole batch: per-image slots, the constants to upload, the buffer sizes.
pub(crate) struct BatchLayout {
    pub slots: Vec<Slot>,
    pub consts: Vec<f32>,
    pub sizes: Sizes,
    pub classes: usize,
}

/// The CPU path's Gaussian weights (empty without smoothing), uploaded as they are.
fn smoothing_kernel(sigma: f32) -> Vec<f32> {
    if sigma > 0.0 { smoothing::kernel(sigma) } else { Vec::new() }
}

fn push_taps(consts: &mut Vec<f32>, axis: &Axis) {
    for &(i0, i1, w) in axis.taps() {
        // Grid indices are far below 2^24: exact as f32.
        consts.extend_from_slice(&[i0 as f32, i1 as f32, w]);
    }
}

/// Checked `usize -> u32` for offsets: the caller keeps buffers under the device's binding limit (at most 4 GiB).
fn u32_of(v: usize) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

impl BatchLayout {
    /// Lays out a batch; every request must have passed `check_request`.
    pub fn new(batch: &[PostprocessRequest<'_>], text: &TextFeatures, config: &PostprocessConfig) -> Self {
        let classes = text.classes();
        let gauss = smoothing_kernel(config.smoothing_sigma);
        let mut consts = Vec::with_capacity(text.rows.len() + gauss.len());
        consts.extend_from_slice(&text.rows);
        let gauss_off = consts.len();
        consts.extend_from_slice(&gauss);
        let radius = gauss.len() / 2;

        let mut at = Sizes::default();
        let mut readback_at = 0usize;
        let mut slots = Vec::with_capacity(batch.len());
        for request in batch {
            let (f, output) = (request.features, request.output);
            let need = image_sizes(request, classes, config.keep_class_maps);
            let cells = f.grid_w * f.grid_h;
            let pixels = output.width * output.height;
            let up = Bilinear::new(f.grid_w, f.grid_h, output.width, output.height);
            let (xs, ys) = up.axes();
            let xtaps_off = consts.len();
            push_taps(&mut consts, xs);
            let ytaps_off = consts.len();
            push_taps(&mut consts, ys);
            let ref_off = consts.len();
            if let Some(e) = request.reference {
                consts.extend(e.terms(&request.fusion));
            }
            let norm_off = at.scratch;
            let probs_off = norm_off + f.layers * cells * f.dim;
            let grids_off = probs_off + f.layers * classes * cells;
            let agrid_off = grids_off + classes * cells;
            let params = Params {
                cells: u32_of(cells),
                classes: u32_of(classes),
                layers: u32_of(f.layers),
                dim: u32_of(f.dim),
                grid_w: u32_of(f.grid_w),
                width: u32_of(output.width),
                height: u32_of(output.height),
                radius: u32_of(radius),
                feat_off: u32_of(at.feats),
                probs_off: u32_of(probs_off),
                grids_off: u32_of(grids_off),
                agrid_off: u32_of(agrid_off),
                map_off: u32_of(at.maps),
                tmp_off: u32_of(at.maps + pixels),
                types_off: u32_of(at.types),
                class_off: u32_of(at.class_maps),
                xtaps_off: u32_of(xtaps_off),
                ytaps_off: u32_of(ytaps_off),
                gauss_off: u32_of(gauss_off),
                temperature: config.temperature,
                text_off: 0,
                norm_off: u32_of(norm_off),
                ref_off: u32_of(ref_off),
                fusion: request.reference.map_or(0, |_| 1 + request.fusion.rule.code()),
                text_weight: request.fusion.text_weight,
            };
            let readback =
                Readback { anomaly: readback_at, types: readback_at + pixels, class_maps: readback_at + 2 * pixels };
            readback_at += need.readback;
            at.add(&Sizes { consts: 0, ..need });
            slots.push(Slot { params, output, readback });
        }
        at.consts = consts.len();
        Self { slots, consts, sizes: at, classes }
    }

    /// The `Params` records of all images, as uploaded.
    pub fn params_words(&self) -> Vec<u32> {
        self.slots.iter().flat_map(|s| s.params.words()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use loupe_sdk::ImageFeatures;

    fn features(grid: usize, layers: usize, dim: usize) -> ImageFeatures {
        ImageFeatures {
            global: vec![1.0; dim],
            patches: vec![1.0; layers * grid * grid * dim],
            layers,
            grid_h: grid,
            grid_w: grid,
            dim,
        }
    }

    #[test]
    fn images_get_disjoint_consecutive_ranges() {
        let text = TextFeatures::new(vec!["a".into(), "b".into()], 4, vec![1.0; 12]).unwrap();
        let (a, b) = (features(2, 3, 4), features(3, 3, 4));
        let cfg = PostprocessConfig { smoothing_sigma: 1.0, keep_class_maps: true, ..Default::default() };
        let batch = [
            PostprocessRequest::text(&a, OutputSize { width: 5, height: 4 }),
            PostprocessRequest::text(&b, OutputSize { width: 7, height: 6 }),
        ];
        let l = BatchLayout::new(&batch, &text, &cfg);
        let (p0, p1) = (l.slots[0].params, l.slots[1].params);
        assert_eq!(p0.feat_off, 0);
        assert_eq!(p1.feat_off as usize, a.patches.len());
        assert_eq!(l.sizes.feats, a.patches.len() + b.patches.len());
        // scratch: 3 layers x cells x dim 4 of features, 3 layers x 3 classes x cells of probabilities, 3 class
        // grids, 1 anomaly grid.
        assert_eq!((p0.norm_off, p0.probs_off), (0, 3 * 4 * 4));
        assert_eq!(p0.grids_off, p0.probs_off + 3 * 3 * 4);
        assert_eq!(p0.agrid_off, p0.grids_off + 3 * 4);
        assert_eq!(p1.norm_off, p0.agrid_off + 4);
        assert_eq!(p1.probs_off, p1.norm_off + 3 * 9 * 4);
        assert_eq!(l.sizes.scratch, (12 + 9 + 3 + 1) * 4 + (12 + 9 + 3 + 1) * 9);
        assert_eq!((p0.map_off, p0.tmp_off, p1.map_off), (0, 20, 40));
        assert_eq!((p1.types_off, p1.class_off), (20, 60));
        assert_eq!(l.slots[1].readback, Readback { anomaly: 100, types: 142, class_maps: 184 });
        assert_eq!(l.sizes.readback, 100 + 42 * 5);
        // consts: text, 9 Gaussian weights (sigma 1, radius 4), then taps of each image.
        assert_eq!((p0.gauss_off, p0.radius, p0.xtaps_off, p0.ytaps_off), (12, 4, 21, 36));
        assert_eq!(p1.xtaps_off, 48);
        assert_eq!(l.consts.len(), 48 + 3 * (7 + 6));
        assert_eq!(l.params_words().len(), 2 * PARAMS_WORDS);
        assert_eq!(p0.fusion, 0, "text only");
    }

    #[test]
    fn reference_terms_follow_the_taps() {
        use loupe_sdk::{Fusion, FusionRule, ReferenceEvidence, ScoringMode, Thresholds};
        let text = TextFeatures::new(vec!["a".into()], 4, vec![1.0; 8]).unwrap();
        let f = features(2, 1, 4);
        let e = ReferenceEvidence::new(ScoringMode::Mutual, vec![0.1, 0.2, 0.3, 0.4], 0.1, 5).unwrap();
        let request = PostprocessRequest {
            features: &f,
            output: OutputSize { width: 3, height: 2 },
            reference: Some(&e),
            fusion: Fusion { rule: FusionRule::Harmonic, text_weight: 0.25 },
            thresholds: Some(Thresholds { image: 0.4, pixel: 0.3 }),
        };
        let l = BatchLayout::new(&[request], &text, &PostprocessConfig::default());
        let p = l.slots[0].params;
        assert_eq!((p.fusion, p.text_weight), (2, 0.25));
        assert_eq!(p.ref_off as usize, 8 + 3 * (3 + 2), "after the text matrix and the taps");
        assert_eq!(&l.consts[p.ref_off as usize..], e.normalized().as_slice());
        assert_eq!(l.sizes.consts, l.consts.len());
    }
}
