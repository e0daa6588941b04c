//! The text an answer generated: its reasoning (chat `reasoning_content`
//! or `reasoning`, Responses reasoning items, Anthropic thinking) kept
//! apart from the answer by where it lies in [`StreamState::text`], so
//! that every byte is counted as output and a caller that keeps the text
//! gets the two apart.

use super::parse::StreamState;

impl StreamState {
    /// Add reasoning text (counted as output, kept apart from the answer).
    pub(super) fn push_reasoning(&mut self, r: &str) {
        let start = self.text.len();
        self.text.push_str(r);
        match self.reasoning.last_mut() {
            Some(last) if last.end == start => last.end = self.text.len(),
            _ => self.reasoning.push(start..self.text.len()),
        }
    }

    /// The generated text as (answer, reasoning).
    pub fn split_text(&mut self) -> (String, String) {
        let (text, mut at) = (std::mem::take(&mut self.text), 0);
        if self.reasoning.is_empty() {
            return (text, String::new());
        }
        let (mut answer, mut reasoning) = (String::new(), String::new());
        for r in &self.reasoning {
            answer.push_str(&text[at..r.start]);
            reasoning.push_str(&text[r.clone()]);
            at = r.end;
        }
        answer.push_str(&text[at..]);
        (answer, reasoning)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasoning_in_pieces_around_the_answer_comes_apart() {
        let mut st = StreamState::default();
        st.push_reasoning("think ");
        st.push_reasoning("more");
        st.text.push_str("Hi");
        st.push_reasoning(" again");
        st.text.push_str(" there");
        assert_eq!(st.text, "think moreHi again there");
        assert_eq!(st.reasoning, vec![0..10, 12..18]);
        assert_eq!(
            st.split_text(),
            ("Hi there".into(), "think more again".into())
        );
    }
}
