//! The CLIP byte-pair tokenizer (the crate embeds OpenAI's vocabulary), with open_clip's text clean-up.

use instant_clip_tokenizer::Tokenizer;

/// CLIP BPE tokenizer.
pub struct ClipTokenizer {
    inner: Tokenizer,
}

impl Default for ClipTokenizer {
    fn default() -> Self {
        Self { inner: Tokenizer::new() }
    }
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
        self.inner.encode(&cleaned, &mut tokens);
        tokens.into_iter().map(|t| u32::from(t.to_u16())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_clip_ids_for_common_words() {
        let t = ClipTokenizer::default();
        // Ids from OpenAI's CLIP vocabulary (also what open_clip's SimpleTokenizer returns).
        assert_eq!(t.encode("Hi there"), vec![1883, 997]);
        assert_eq!(t.encode("  hi\tthere "), vec![1883, 997]);
        assert_eq!(t.encode("it\u{2019}s"), t.encode("it's"));
        assert!(!t.encode("<start_of_text>").contains(&49406));
    }
}
