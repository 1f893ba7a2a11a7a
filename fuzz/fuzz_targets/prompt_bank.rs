//! Fuzz target `prompt_bank`: safetensors files of a model or prompt bank. The first byte picks the mode:
//!
//! - even: the input (after that byte) is a prompt-bank file given to
//!   [`DapoPromptBank::from_bytes_with_encoder`] without a text encoder (the path that never runs tract: it
//!   serves the bank's cached `text_features`), checked against the `model_id` its own metadata records (so the
//!   fuzzer gets past that check) or, when the byte's bit 1 is set, the fixture model's;
//! - odd: the input is a model's token-embedding table given to [`load_f32_tensor`] (what
//!   `TextEncoder::load` reads), with the shape the file itself declares (bit 1 clear) or `[vocab, width]` from
//!   the next two little-endian `u16`s.
//!
//! Checks: nothing panics (overflow included) or allocates without bound; an `Ok` bank is consistent (cannot add
//! words, its cached matrix serves its trained words in any order and refuses a word it lacks, rows of `dim`
//! values, L2-normalised or zero); an `Ok` table has `vocab * width` values.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use loupe_dapo::DapoPromptBank;
use loupe_dapo::text_encoder::load_f32_tensor;
use loupe_sdk::PromptBank;
use safetensors::SafeTensors;

/// `model_id` of `tests/fixtures/parity/model`, the model the seed bank was made for.
const FIXTURE_MODEL_ID: &str = "30086d39fc3f2401";

fn bank(bytes: &[u8], fixed_id: bool) {
    let own_id = SafeTensors::read_metadata(bytes)
        .ok()
        .and_then(|(_, header)| header.metadata().as_ref().and_then(|m| m.get("model_id").cloned()));
    let model_id = match own_id {
        Some(id) if !fixed_id => id,
        _ => FIXTURE_MODEL_ID.to_string(),
    };
    let origin = Path::new("<fuzz>/bank.safetensors");
    let Ok(bank) = DapoPromptBank::from_bytes_with_encoder(bytes, origin, &model_id, None) else { return };
    assert_eq!(bank.backbone_id(), model_id);
    assert!(!bank.can_add_words(), "a bank without an encoder cannot add words");
    let _ = bank.info();
    let dim = bank.dim();
    let words = bank.trained_words().to_vec();
    let check = |asked: &[String]| {
        let t = bank.text_features(asked).expect("a bank serves its own trained words");
        assert_eq!(t.classes(), 1 + asked.len());
        for k in 0..t.classes() {
            let row = t.row(k);
            assert_eq!(row.len(), dim);
            let norm = row.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
            assert!(
                row.iter().all(|x| x.is_finite()) && (norm == 0.0 || (norm - 1.0).abs() < 1e-3),
                "row {k} not normalised: norm {norm}"
            );
        }
    };
    check(&words);
    check(&[]);
    let reversed: Vec<String> = words.iter().rev().cloned().collect();
    check(&reversed);
    let unknown = format!("{}-not-trained", words.join("+"));
    assert!(bank.text_features(&[unknown]).is_err(), "served a word it was not trained on, without an encoder");
}

fn token_table(bytes: &[u8], shape_from_input: bool) {
    let (shape, bytes) = if shape_from_input {
        let Some((head, rest)) = bytes.split_first_chunk::<4>() else { return };
        let vocab = u16::from_le_bytes([head[0], head[1]]) as usize;
        let width = u16::from_le_bytes([head[2], head[3]]) as usize;
        (vec![vocab, width], rest)
    } else {
        let declared = SafeTensors::read_metadata(bytes)
            .ok()
            .and_then(|(_, header)| header.tensors().get("token_embedding").map(|t| t.shape.clone()));
        (declared.unwrap_or_else(|| vec![4, 4]), bytes)
    };
    let origin = Path::new("<fuzz>/token_embedding.safetensors");
    let Ok(table) = load_f32_tensor(bytes, origin, "token_embedding", &shape) else { return };
    let expected = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).expect("accepted shape fits");
    assert_eq!(table.len(), expected, "table of shape {shape:?}");
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode & 1 == 0 {
        bank(rest, mode & 2 != 0);
    } else {
        token_table(rest, mode & 2 != 0);
    }
});
