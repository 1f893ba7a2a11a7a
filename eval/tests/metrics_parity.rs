//! Parity of the metrics with scikit-learn and the MVTec AD AUPRO algorithm, on the committed fixtures written by
//! `PYTHONPATH=tools python -m loupe_tools.metrics_reference` (`tests/fixtures/metrics/`). Exact paths agree within
//! 1e-6 (AUPRO 1e-4); binned paths within their own computed bound; every case the reference marks undefined is an
//! error here.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

use std::path::PathBuf;

use loupe_eval::metrics::multitype::TypeAccumulator;
use loupe_eval::metrics::pro::{MapAndMask, PixelAccumulator, ProCurve};
use loupe_eval::metrics::{ConfusionMatrix, MetricResult, RankedCounts};
use serde_json::Value;

const TOL: f64 = 1e-6;
const TOL_AUPRO: f64 = 1e-4;

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/metrics").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().map_or(f32::NAN, |f| f as f32)).collect()
}

fn bools(v: &Value) -> Vec<bool> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() != 0).collect()
}

fn u16s(v: &Value) -> Vec<u16> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u16).collect()
}

/// Checks one metric: a number within `tol` of the reference, or an error where the reference is undefined.
fn check(case: &str, name: &str, expected: &Value, got: &MetricResult<f64>, tol: f64) -> f64 {
    match (expected.as_f64(), got) {
        (Some(e), Ok(g)) => {
            assert!((e - g).abs() <= tol, "{case}: {name} = {g}, reference {e}");
            (e - g).abs()
        }
        (None, Err(_)) => 0.0,
        (Some(e), Err(err)) => panic!("{case}: {name}: error `{err}`, reference {e}"),
        (None, Ok(g)) => panic!("{case}: {name} = {g}, but the reference says it is undefined"),
    }
}

#[test]
fn binary_metrics_match_scikit_learn() {
    let doc = fixture("binary.json");
    let mut worst = 0.0f64;
    for case in doc["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (scores, labels) = (f32s(&case["scores"]), bools(&case["labels"]));
        let exp = &case["expected"];
        let ranked = RankedCounts::from_scores(&scores, &labels);
        let (auroc, ap, f1) = match &ranked {
            Ok(r) => (r.roc_auc(), r.average_precision(), r.f1_max().map(|f| f.f1)),
            Err(e) => (Err(e.clone()), Err(e.clone()), Err(e.clone())),
        };
        worst = worst.max(check(name, "auroc", &exp["auroc"], &auroc, TOL));
        worst = worst.max(check(name, "average_precision", &exp["average_precision"], &ap, TOL));
        worst = worst.max(check(name, "f1_max", &exp["f1_max"], &f1, TOL));
        // The reported threshold really reaches the F1: recount from the raw scores.
        if let Ok(best) = ranked.as_ref().map_err(Clone::clone).and_then(|r| r.f1_max()) {
            let called = |i: usize| f64::from(scores[i]) >= best.threshold;
            let tp = (0..scores.len()).filter(|&i| called(i) && labels[i]).count() as f64;
            let fp = (0..scores.len()).filter(|&i| called(i) && !labels[i]).count() as f64;
            let p = labels.iter().filter(|&&l| l).count() as f64;
            assert!((2.0 * tp / (tp + fp + p) - best.f1).abs() < 1e-12, "{name}: F1 at the reported threshold");
        }
    }
    eprintln!("binary: largest difference from scikit-learn {worst:e}");
}

struct PixelCase {
    name: String,
    maps: Vec<Vec<f32>>,
    masks: Vec<Vec<bool>>,
    sizes: Vec<(usize, usize)>,
    expected: Value,
}

fn pixel_cases() -> (Vec<PixelCase>, Vec<f64>) {
    let doc = fixture("pixel.json");
    let limits = doc["fpr_limits"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let cases = doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let images = c["images"].as_array().unwrap();
            PixelCase {
                name: c["name"].as_str().unwrap().to_string(),
                maps: images.iter().map(|i| f32s(&i["scores"])).collect(),
                masks: images.iter().map(|i| bools(&i["mask"])).collect(),
                sizes: images
                    .iter()
                    .map(|i| (i["width"].as_u64().unwrap() as usize, i["height"].as_u64().unwrap() as usize))
                    .collect(),
                expected: c["expected"].clone(),
            }
        })
        .collect();
    (cases, limits)
}

impl PixelCase {
    fn views(&self) -> Vec<MapAndMask<'_>> {
        (0..self.maps.len())
            .map(|k| MapAndMask {
                width: self.sizes[k].0,
                height: self.sizes[k].1,
                scores: &self.maps[k],
                mask: &self.masks[k],
            })
            .collect()
    }
}

#[test]
fn exact_pixel_metrics_and_aupro_match_the_references() {
    let (cases, limits) = pixel_cases();
    let (mut worst, mut worst_pro) = (0.0f64, 0.0f64);
    for case in &cases {
        let name = case.name.as_str();
        let scores: Vec<f32> = case.maps.concat();
        let labels: Vec<bool> = case.masks.concat();
        let ranked = RankedCounts::from_scores(&scores, &labels);
        let auroc = ranked.as_ref().map_err(Clone::clone).and_then(|r| r.roc_auc());
        let ap = ranked.as_ref().map_err(Clone::clone).and_then(|r| r.average_precision());
        worst = worst.max(check(name, "pixel auroc", &case.expected["auroc"], &auroc, TOL));
        worst = worst.max(check(name, "pixel AP", &case.expected["average_precision"], &ap, TOL));
        let curve = ProCurve::exact(&case.views());
        for &limit in &limits {
            let got = curve.as_ref().map_err(Clone::clone).and_then(|c| c.au_pro(limit));
            let key = format!("aupro@{limit:?}");
            worst_pro = worst_pro.max(check(name, &key, &case.expected[&key], &got, TOL_AUPRO));
        }
    }
    eprintln!("pixel: largest difference from scikit-learn {worst:e}, AUPRO from the MVTec algorithm {worst_pro:e}");
}

/// The bounded-memory accumulator: within its computed bound of the reference, and equal to it when every score
/// sits on a bin edge.
#[test]
fn binned_pixel_metrics_stay_within_their_bounds() {
    let (cases, _) = pixel_cases();
    for case in &cases {
        let name = case.name.as_str();
        // The `ties_on_32nds` scores are multiples of 1/32: with 32 or 1024 bins over [0, 1] binning is exact.
        let bin_counts: &[usize] = if name == "ties_on_32nds" { &[32, 1024, 1 << 16] } else { &[64, 1 << 16] };
        for &bins in bin_counts {
            let mut acc = PixelAccumulator::new(0.0, 1.0, bins).unwrap();
            let added: MetricResult<()> =
                case.views().iter().enumerate().try_for_each(|(k, v)| acc.add_image(&format!("{name} image {k}"), v));
            if added.is_err() {
                assert!(case.expected["auroc"].is_null(), "{name}: only the NaN case is refused");
                continue;
            }
            let ranked = acc.scores().ranked_counts().unwrap();
            let bounds = acc.scores().error_bounds();
            let exact_edges = name == "ties_on_32nds";
            let tol = |bound: f64| if exact_edges { TOL } else { bound + TOL };
            let what = format!("{name} ({bins} bins)");
            check(&what, "pixel auroc", &case.expected["auroc"], &ranked.roc_auc(), tol(bounds.auroc));
            check(
                &what,
                "pixel AP",
                &case.expected["average_precision"],
                &ranked.average_precision(),
                tol(bounds.average_precision),
            );
            let aupro = acc.pro_curve().and_then(|c| c.au_pro(0.3));
            let bound = acc.aupro_error_bound(0.3).unwrap_or(0.0);
            let tol_pro = if exact_edges { TOL_AUPRO } else { bound + TOL_AUPRO };
            check(&what, "aupro@0.3", &case.expected["aupro@0.3"], &aupro, tol_pro);
        }
    }
}

#[test]
fn multitype_metrics_match_scikit_learn() {
    let doc = fixture("multitype.json");
    for case in doc["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let types = case["types"].as_u64().unwrap() as usize;
        let exp = &case["expected"];
        // Type scores are multiples of 1/1000: 2^20 bins over [0, 1] put each distinct value in its own bin, so
        // the binned one-vs-rest metrics are exact here.
        let mut acc = TypeAccumulator::new(types, 0.0, 1.0, 1 << 20).unwrap();
        let mut argmax = ConfusionMatrix::new(types + 1);
        let mut decided = ConfusionMatrix::new(types + 1);
        for (k, image) in case["images"].as_array().unwrap().iter().enumerate() {
            let maps: Vec<Vec<f32>> = image["type_scores"].as_array().unwrap().iter().map(f32s).collect();
            let views: Vec<&[f32]> = maps.iter().map(Vec::as_slice).collect();
            acc.add_image(&format!("image {k}"), &u16s(&image["truth"]), &u16s(&image["predicted"]), &views).unwrap();
            let truth = image["image_truth"].as_u64().unwrap() as usize;
            let pred = image["image_argmax"].as_u64().unwrap() as usize;
            if truth > 0 {
                argmax.add(truth, pred).unwrap();
            }
            let anomalous = image["image_anomalous"].as_bool().unwrap();
            decided.add(truth, if anomalous { pred } else { 0 }).unwrap();
        }
        let summary = acc.summary();
        let present: Vec<usize> = summary.per_type.iter().map(|t| t.type_id).collect();
        let expected_present: Vec<usize> =
            exp["present_types"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        assert_eq!(present, expected_present, "{name}: types present in the ground truth");
        for t in &summary.per_type {
            let key = t.type_id.to_string();
            check(name, &format!("ovr_auroc[{key}]"), &exp["ovr_auroc"][&key], &t.ovr_auroc, TOL);
            check(name, &format!("ovr_ap[{key}]"), &exp["ovr_ap"][&key], &t.ovr_ap, TOL);
            check(name, &format!("f1[{key}]"), &exp["f1"][&key], &t.f1, TOL);
            check(name, &format!("iou[{key}]"), &exp["iou"][&key], &t.iou, TOL);
        }
        check(name, "macro_ovr_auroc", &exp["macro_ovr_auroc"], &summary.macro_ovr_auroc, TOL);
        check(name, "macro_ovr_ap", &exp["macro_ovr_ap"], &summary.macro_ovr_ap, TOL);
        check(name, "macro_f1", &exp["macro_f1"], &summary.macro_f1, TOL);
        check(name, "image_type_accuracy", &exp["image_type_accuracy"], &argmax.accuracy(), TOL);
        let rows: Vec<Vec<u64>> = exp["image_confusion"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect())
            .collect();
        assert_eq!(decided.rows(), rows, "{name}: image confusion matrix");
    }
}
