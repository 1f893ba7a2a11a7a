// DAPO post-processing kernels. Each mirrors a loop of the CPU reference (`postprocess/mod.rs`, `upsample.rs`,
// `smoothing.rs`) in the same summation order, so the two differ only by the rounding of exp, division and fused
// multiply-adds (see `docs/gpu.md`). One dispatch covers the whole batch: the last dispatch dimension is the image,
// and `params[image]` says where its data lie in the shared buffers, in f32/u32 elements.

struct Params {
    cells: u32,        // grid_w * grid_h
    classes: u32,      // 1 + K
    layers: u32,
    dim: u32,
    grid_w: u32,
    width: u32,        // output map
    height: u32,
    radius: u32,       // Gaussian radius; 0 = no smoothing
    feat_off: u32,     // feats: patch features as uploaded [layers, cells, dim]
    probs_off: u32,    // scratch: per-layer class probabilities [layers, classes, cells]
    grids_off: u32,    // scratch: class grids summed over layers [classes, cells]
    agrid_off: u32,    // scratch: anomaly grid [cells]
    map_off: u32,      // maps: anomaly map [height, width]
    tmp_off: u32,      // maps: horizontal smoothing pass [height, width]
    types_off: u32,    // types: per-pixel type id [height, width]
    class_off: u32,    // class_maps: [classes, height, width]
    xtaps_off: u32,    // consts: per output column (x0, x1, weight of x1)
    ytaps_off: u32,    // consts: per output row (y0, y1, weight of y1)
    gauss_off: u32,    // consts: Gaussian weights [2 * radius + 1]
    temperature: f32,
    _pad0: u32,        // was the pixel threshold: masks are decided on the CPU now
    text_off: u32,     // consts: text matrix [classes, dim], L2-normalised rows
    norm_off: u32,     // scratch: normalised patch features, transposed [layers, dim, cells]
    ref_off: u32,      // consts: per-cell reference terms [cells], when fusion != 0
    fusion: u32,       // 0: text only; 1 + rule: 1 mean, 2 harmonic, 3 layer_sum, 4 reference (loupe_sdk::fusion)
    text_weight: f32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> params: array<Params>;
@group(0) @binding(1) var<storage, read> feats: array<f32>;
@group(0) @binding(2) var<storage, read> consts: array<f32>;
@group(0) @binding(3) var<storage, read_write> scratch: array<f32>;
@group(0) @binding(4) var<storage, read_write> maps: array<f32>;
@group(0) @binding(5) var<storage, read_write> types: array<u32>;
@group(0) @binding(6) var<storage, read_write> class_maps: array<f32>;

// The lowest finite f32. The CPU starts its maxima at -inf; every value compared here is finite (a logit or a
// probability sum), so a start at the lowest finite value picks the same winner, and WGSL has no inf literal.
const LOWEST: f32 = -3.40282347e38;

// Per (layer, patch): L2-normalises the patch feature (`normalize` on the CPU: a zero vector stays) into a
// [layers, dim, cells] copy, so that the threads of `layer_softmax` (one per patch) read neighbouring addresses.
@compute @workgroup_size(64)
fn normalize_patches(@builtin(global_invocation_id) gid: vec3<u32>) {
    let p = params[gid.z];
    let i = gid.x;
    if (i >= p.layers * p.cells) {
        return;
    }
    let row = p.feat_off + i * p.dim;
    var ss = 0.0;
    for (var d = 0u; d < p.dim; d++) {
        let x = feats[row + d];
        ss += x * x;
    }
    let norm = sqrt(ss);
    let l = i / p.cells;
    let out = p.norm_off + l * p.dim * p.cells + i % p.cells;
    for (var d = 0u; d < p.dim; d++) {
        let x = feats[row + d];
        scratch[out + d * p.cells] = select(x, x / norm, norm > 0.0);
    }
}

// Per (layer, patch): cosine with every text row / temperature, softmax over classes (`class_grids` on the CPU).
@compute @workgroup_size(64)
fn layer_softmax(@builtin(global_invocation_id) gid: vec3<u32>) {
    let p = params[gid.z];
    let i = gid.x;
    if (i >= p.layers * p.cells) {
        return;
    }
    let l = i / p.cells;
    let cell = i % p.cells;
    let src = p.norm_off + l * p.dim * p.cells + cell;
    let out = p.probs_off + l * p.classes * p.cells + cell;
    var mx = LOWEST;
    for (var k = 0u; k < p.classes; k++) {
        let t = p.text_off + k * p.dim;
        var acc = 0.0;
        for (var d = 0u; d < p.dim; d++) {
            acc += scratch[src + d * p.cells] * consts[t + d];
        }
        let logit = acc / p.temperature;
        scratch[out + k * p.cells] = logit;
        mx = max(mx, logit);
    }
    var sum = 0.0;
    for (var k = 0u; k < p.classes; k++) {
        let e = exp(scratch[out + k * p.cells] - mx);
        scratch[out + k * p.cells] = e;
        sum += e;
    }
    for (var k = 0u; k < p.classes; k++) {
        scratch[out + k * p.cells] = scratch[out + k * p.cells] / sum;
    }
}

const HARMONIC_FLOOR: f32 = 1e-6;

// `Fusion::cell` of loupe_sdk::fusion, in the same operation order: the text anomaly value fused with the
// cell's reference term.
fn fuse(p: Params, text: f32, reference: f32) -> f32 {
    let l = f32(max(p.layers, 1u));
    let w = p.text_weight;
    switch p.fusion {
        case 1u: { return w * (text / l) + (1.0 - w) * reference; }
        case 2u: { return 1.0 / (w / max(text / l, HARMONIC_FLOOR) + (1.0 - w) / max(reference, HARMONIC_FLOOR)); }
        case 3u: { return text + l * reference; }
        case 4u: { return reference; }
        default: { return text; }
    }
}

// Per patch: class grids = sum over layers in layer order; anomaly grid = sum of the defect classes, fused with
// the reference evidence when there is some.
@compute @workgroup_size(64)
fn sum_layers(@builtin(global_invocation_id) gid: vec3<u32>) {
    let p = params[gid.z];
    let cell = gid.x;
    if (cell >= p.cells) {
        return;
    }
    var anomaly = 0.0;
    for (var k = 0u; k < p.classes; k++) {
        var g = 0.0;
        for (var l = 0u; l < p.layers; l++) {
            g += scratch[p.probs_off + (l * p.classes + k) * p.cells + cell];
        }
        scratch[p.grids_off + k * p.cells + cell] = g;
        if (k >= 1u) {
            anomaly += g;
        }
    }
    if (p.fusion != 0u) {
        anomaly = fuse(p, anomaly, consts[p.ref_off + cell]);
    }
    scratch[p.agrid_off + cell] = anomaly;
}

// Bilinear sample (align_corners) of the grid at scratch[base..], taps precomputed on the CPU (`Bilinear`).
fn sample(p: Params, base: u32, x: u32, y: u32) -> f32 {
    let tx = p.xtaps_off + 3u * x;
    let ty = p.ytaps_off + 3u * y;
    let x0 = u32(consts[tx]);
    let x1 = u32(consts[tx + 1u]);
    let wx = consts[tx + 2u];
    let row0 = base + u32(consts[ty]) * p.grid_w;
    let row1 = base + u32(consts[ty + 1u]) * p.grid_w;
    let wy = consts[ty + 2u];
    let top = scratch[row0 + x0] + (scratch[row0 + x1] - scratch[row0 + x0]) * wx;
    let bottom = scratch[row1 + x0] + (scratch[row1 + x1] - scratch[row1 + x0]) * wx;
    return top + (bottom - top) * wy;
}

@compute @workgroup_size(16, 16)
fn upsample_anomaly(@builtin(global_invocation_id) gid: vec3<u32>) {
    let p = params[gid.z];
    if (gid.x >= p.width || gid.y >= p.height) {
        return;
    }
    maps[p.map_off + gid.y * p.width + gid.x] = sample(p, p.agrid_off, gid.x, gid.y);
}

// `i` reflected into 0..n, edge repeated (`d c b a | a b c d`), repeating for kernels wider than the map.
fn reflect(i0: i32, n: i32) -> u32 {
    var i = i0;
    loop {
        if (i < 0) {
            i = -i - 1;
        } else if (i >= n) {
            i = 2 * n - i - 1;
        } else {
            break;
        }
    }
    return u32(i);
}

@compute @workgroup_size(16, 16)
fn smooth_rows(@builtin(global_invocation_id) gid: vec3<u32>) {
    let p = params[gid.z];
    if (gid.x >= p.width || gid.y >= p.height) {
        return;
    }
    let r = i32(p.radius);
    let row = p.map_off + gid.y * p.width;
    var acc = 0.0;
    for (var j = 0; j <= 2 * r; j++) {
        acc += consts[p.gauss_off + u32(j)] * maps[row + reflect(i32(gid.x) + j - r, i32(p.width))];
    }
    maps[p.tmp_off + gid.y * p.width + gid.x] = acc;
}

@compute @workgroup_size(16, 16)
fn smooth_columns(@builtin(global_invocation_id) gid: vec3<u32>) {
    let p = params[gid.z];
    if (gid.x >= p.width || gid.y >= p.height) {
        return;
    }
    let r = i32(p.radius);
    var acc = 0.0;
    for (var j = 0; j <= 2 * r; j++) {
        let y = reflect(i32(gid.y) + j - r, i32(p.height));
        acc += consts[p.gauss_off + u32(j)] * maps[p.tmp_off + y * p.width + gid.x];
    }
    maps[p.map_off + gid.y * p.width + gid.x] = acc;
}

// Every pixel's defect type: the largest upsampled class value (first on ties). The mask is decided on the CPU
// (loupe_sdk::thresholding), so that a result can be re-thresholded from these types.
@compute @workgroup_size(16, 16)
fn classify(@builtin(global_invocation_id) gid: vec3<u32>) {
    let p = params[gid.z];
    if (gid.x >= p.width || gid.y >= p.height) {
        return;
    }
    let i = gid.y * p.width + gid.x;
    var best = 1u;
    var best_v = LOWEST;
    for (var k = 1u; k < p.classes; k++) {
        let v = sample(p, p.grids_off + k * p.cells, gid.x, gid.y);
        if (v > best_v) {
            best = k;
            best_v = v;
        }
    }
    types[p.types_off + i] = best;
}

// Per-class maps at output size (only when the configuration keeps them); z = image * classes + class (every
// image of a batch has the same classes).
@compute @workgroup_size(16, 16)
fn upsample_classes(@builtin(global_invocation_id) gid: vec3<u32>) {
    let p = params[gid.z / params[0].classes];
    let k = gid.z % p.classes;
    if (gid.x >= p.width || gid.y >= p.height) {
        return;
    }
    let i = gid.y * p.width + gid.x;
    class_maps[p.class_off + k * p.width * p.height + i] = sample(p, p.grids_off + k * p.cells, gid.x, gid.y);
}
