//! The CLIP byte-pair tokenizer (the crate embeds OpenAI's vocabulary), with open_clip's text clean-up.

use std::sync::OnceLock;

use instant_clip_tokenizer::Tokenizer;

/// CLIP BPE tokenizer. All of them share one table of 49k merges, built on the first `encode` in the process:
/// building it took about 0.4 s per prompt bank under the fuzzer's sanitizer (which is how it was noticed), and a
/// bank that only serves cached text features never needs it.
#[derive(Default)]
pub struct ClipTokenizer;

/// The process's one BPE table.
fn table() -> &'static Tokenizer {
    static TABLE: OnceLock<Tokenizer> = OnceLock::new();
    TABLE.get_or_init(Tokenizer::new)
}

impl ClipTokenizer {
    /// Token ids of `text`, without start/end tokens. Text is cleaned as open_clip does: curly quotes straightened,
    /// whitespace collapsed, lower-cased; the special markers `<start_of_text>`/`<end_of_text>` are not honoured.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let cleaned: String = text
            .chars()
            .map(|c| match c {
                '\u{2018}' | '\u{2019}' => '\'',
                '\u{201C}' | '\u{201D}' => '"',
                '<' | '>' => ' ',
                other => other,
            })
            .collect();
        let cleaned = cleaned.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut tokens = Vec::new();
        table().encode(&cleaned, &mut tokens);
        tokens.into_iter().map(|t| u32::from(t.to_u16())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_clip_ids_for_common_words() {
        let t = ClipTokenizer;
        // Ids from OpenAI's CLIP vocabulary (also what open_clip's SimpleTokenizer returns).
        assert_eq!(t.encode("Hi there"), vec![1883, 997]);
        assert_eq!(t.encode("  hi\tthere "), vec![1883, 997]);
        assert_eq!(t.encode("it\u{2019}s"), t.encode("it's"));
        assert!(!t.encode("<start_of_text>").contains(&49406));
    }
}
