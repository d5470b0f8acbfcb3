//! Splitting replies into Discord-sized messages without breaking code blocks.
//!
//! Discord counts a message's length in UTF-16 code units (JavaScript string length), so an emoji
//! counts twice; we count the same way. A piece that ends inside a ``` block is closed with ```
//! and the next piece reopens it with the same info string (```rust), so each message renders.
//!
//! The split is stable while text grows: a piece, once followed by another, never changes. The
//! streamed reply relies on that to finish a message and move on to the next.

/// Discord's limit on message content.
pub const DISCORD_LIMIT: usize = 2000;

const FENCE: &str = "```";
/// Room kept for the "\n```" that closes a block at the end of a piece.
const CLOSE_RESERVE: usize = 4;

/// Length as Discord counts it.
pub fn discord_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// Splits `text` into pieces of at most `limit` UTF-16 units (use [`DISCORD_LIMIT`]), breaking at
/// a newline if there is one in the second half of the room, else at a space, else anywhere.
pub fn split_message(text: &str, limit: usize) -> Vec<String> {
    let limit = limit.max(32);
    let mut out = Vec::new();
    let mut rest = text;
    let mut open: Option<String> = None;
    loop {
        let prefix = open.as_ref().map(|f| format!("{f}\n")).unwrap_or_default();
        if discord_len(&prefix) + discord_len(rest) <= limit {
            out.push(non_blank(prefix + rest));
            return out;
        }
        let budget = limit
            .saturating_sub(discord_len(&prefix) + CLOSE_RESERVE)
            .max(1);
        let max = byte_index_within(rest, budget);
        let window = &rest[..max];
        let (cut, skip) = best_cut(window);
        let piece = &rest[..cut];
        let after = fence_state(open.clone(), piece);
        let mut chunk = prefix + piece.trim_end_matches('\n');
        if after.is_some() {
            chunk.push('\n');
            chunk.push_str(FENCE);
        }
        out.push(non_blank(chunk));
        rest = &rest[cut + skip..];
        open = after;
    }
}

/// Discord refuses whitespace-only messages; such a piece (only possible in absurd input) gets
/// an ellipsis instead.
fn non_blank(s: String) -> String {
    if s.trim().is_empty() {
        "…".to_string()
    } else {
        s
    }
}

/// The largest char-boundary byte index whose prefix is at most `units` UTF-16 units.
fn byte_index_within(s: &str, units: usize) -> usize {
    let mut used = 0;
    for (i, c) in s.char_indices() {
        used += c.len_utf16();
        if used > units {
            return i;
        }
    }
    s.len()
}

/// Where to cut `window` (bytes) and how many separator bytes to drop after the cut: at a newline
/// in the second half of the window, else at a space there, else anywhere there, else at any
/// newline; only at the window's end when nothing else is possible. A cut never falls inside a
/// fence line (its rest would show as text) nor just before a "```" that would then start the
/// next piece's first line (opening a block the text does not have).
fn best_cut(window: &str) -> (usize, usize) {
    let half = window.len() / 2;
    if let Some(i) = window.rfind('\n').filter(|i| *i >= half && *i > 0) {
        return (i, 1);
    }
    let spaces = window
        .match_indices(' ')
        .rev()
        .map(|(i, _)| (i, 1))
        .take_while(|(i, _)| *i >= half && *i > 0);
    let anywhere = window
        .char_indices()
        .map(|(i, _)| (i, 0))
        .chain([(window.len(), 0)])
        .rev()
        .take_while(|(i, _)| *i >= half && *i > 0);
    if let Some(cut) = spaces
        .chain(anywhere)
        .find(|&(i, skip)| safe_cut(window, i, skip))
    {
        return cut;
    }
    if let Some(i) = window.rfind('\n').filter(|i| *i > 0) {
        return (i, 1);
    }
    (window.len().max(first_char_len(window)), 0)
}

/// Whether cutting `window` at `cut` (dropping `skip` bytes) keeps fence lines as they are. Only
/// the window is looked at, so that a finished piece never changes as the text grows; what the
/// window cannot show counts as unsafe.
fn safe_cut(window: &str, cut: usize, skip: usize) -> bool {
    let line_start = window[..cut].rfind('\n').map_or(0, |i| i + 1);
    if cut > line_start && starts_fence_line(&window[line_start..]) != Some(false) {
        return false;
    }
    let next = window.get(cut + skip..).unwrap_or("");
    starts_fence_line(next) == Some(false)
}

/// Whether the line `s` starts with is a fence line; `None` while `s` is too short to tell.
fn starts_fence_line(s: &str) -> Option<bool> {
    let (line, complete) = match s.find('\n') {
        Some(i) => (&s[..i], true),
        None => (s, false),
    };
    let t = line.trim_start();
    if !complete && FENCE.starts_with(t) {
        return None;
    }
    Some(t.starts_with(FENCE))
}

fn first_char_len(s: &str) -> usize {
    s.chars().next().map_or(0, char::len_utf8)
}

/// The open fence (its opening line) after `piece`, starting from `open`.
fn fence_state(mut open: Option<String>, piece: &str) -> Option<String> {
    for line in piece.lines() {
        let t = line.trim_start();
        if let Some(info) = t.strip_prefix(FENCE) {
            open = match open {
                Some(_) => None,
                // The info string is a language name; a long one would eat every piece's room.
                None => Some(format!(
                    "{FENCE}{}",
                    info.trim().chars().take(24).collect::<String>()
                )),
            };
        }
    }
    open
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_fences_balanced(pieces: &[String]) {
        for p in pieces {
            let fences = p
                .lines()
                .filter(|l| l.trim_start().starts_with(FENCE))
                .count();
            assert_eq!(fences % 2, 0, "unbalanced fences in piece:\n{p}");
        }
    }

    #[test]
    fn short_text_is_one_piece() {
        assert_eq!(split_message("hello", DISCORD_LIMIT), vec!["hello"]);
    }

    #[test]
    fn every_piece_fits_and_nothing_is_lost() {
        let words: Vec<String> = (0..1500).map(|i| format!("word{i}")).collect();
        let text = words.join(" ");
        let pieces = split_message(&text, DISCORD_LIMIT);
        assert!(pieces.len() > 1);
        for p in &pieces {
            assert!(discord_len(p) <= DISCORD_LIMIT);
        }
        assert_eq!(pieces.join(" "), text);
    }

    #[test]
    fn prefers_newlines() {
        let text = format!("{}\n{}", "a".repeat(1500), "b".repeat(1000));
        let pieces = split_message(&text, DISCORD_LIMIT);
        assert_eq!(pieces, vec!["a".repeat(1500), "b".repeat(1000)]);
    }

    #[test]
    fn code_blocks_are_closed_and_reopened() {
        let code: Vec<String> = (0..300).map(|i| format!("let x{i} = {i};")).collect();
        let text = format!("Here:\n```rust\n{}\n```\nDone.", code.join("\n"));
        let pieces = split_message(&text, DISCORD_LIMIT);
        assert!(pieces.len() >= 3, "{}", pieces.len());
        assert_fences_balanced(&pieces);
        assert!(pieces[1].starts_with("```rust\n"), "{}", &pieces[1][..20]);
        assert!(pieces[0].ends_with("\n```"));
        assert!(pieces.last().expect("last").ends_with("Done."));
        for p in &pieces {
            assert!(discord_len(p) <= DISCORD_LIMIT);
        }
        // Without the added fences, the pieces are the original text.
        let rebuilt: Vec<String> = pieces
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let p = if i > 0 {
                    p.strip_prefix("```rust\n").unwrap_or(p)
                } else {
                    p
                };
                p.strip_suffix("\n```")
                    .filter(|_| i + 1 < pieces.len())
                    .unwrap_or(p)
                    .to_string()
            })
            .collect();
        assert_eq!(rebuilt.join("\n"), text);
    }

    #[test]
    fn emoji_count_twice_and_are_not_cut() {
        let text = "🔧".repeat(1500);
        let pieces = split_message(&text, DISCORD_LIMIT);
        assert_eq!(pieces.len(), 2);
        for p in &pieces {
            assert!(discord_len(p) <= DISCORD_LIMIT);
        }
        assert_eq!(pieces.concat(), text);
    }

    #[test]
    fn split_is_stable_as_text_grows() {
        let mut text = String::new();
        let mut finished: Vec<String> = Vec::new();
        for i in 0..2000 {
            text.push_str(&format!("token{i} "));
            if i % 97 == 0 {
                text.push_str("\n```\ncode\n");
            }
            let pieces = split_message(&text, DISCORD_LIMIT);
            let done = &pieces[..pieces.len() - 1];
            assert!(done.len() >= finished.len());
            assert_eq!(
                &done[..finished.len()],
                &finished[..],
                "a finished piece changed"
            );
            finished = done.to_vec();
        }
    }

    #[test]
    fn whitespace_only_pieces_are_not_sent_blank() {
        let text = format!("a{}b", "\n".repeat(3000));
        for p in split_message(&text, DISCORD_LIMIT) {
            assert!(!p.trim().is_empty());
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Pieces of text that stress the splitter: words, spaces, newlines, fence lines (with and
        /// without an info string, some with spaces), stray backticks, characters that count
        /// twice, and runs too long for any break.
        fn token() -> impl Strategy<Value = String> {
            prop_oneof![
                4 => "[a-z]{1,12}",
                3 => Just(" ".to_string()),
                2 => Just("\n".to_string()),
                1 => "[a-z ]{0,10}".prop_map(|info| format!("\n```{info}\n")),
                1 => Just("`".to_string()),
                1 => Just("🔧".to_string()),
                1 => (50usize..400).prop_map(|n| "x".repeat(n)),
            ]
        }

        fn text() -> impl Strategy<Value = String> {
            prop::collection::vec(token(), 0..900).prop_map(|t| t.concat())
        }

        fn is_fence(line: &str) -> bool {
            line.trim_start().starts_with(FENCE)
        }

        /// The visible characters outside fence lines: what must survive the split unchanged.
        fn visible(text: &str) -> String {
            text.lines()
                .filter(|l| !is_fence(l))
                .flat_map(|l| l.chars())
                .filter(|c| !c.is_whitespace())
                .collect()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn pieces_fit_keep_fences_whole_and_lose_nothing(text in text(), limit in 80usize..=2000) {
                // A fence line longer than a piece's room must be cut like any other line.
                let longest_fence = text.lines().filter(|l| is_fence(l)).map(discord_len).max();
                prop_assume!(longest_fence.unwrap_or(0) + 40 < limit);
                let pieces = split_message(&text, limit);
                for p in &pieces {
                    prop_assert!(discord_len(p) <= limit, "{} units: {p:?}", discord_len(p));
                    prop_assert!(!p.trim().is_empty());
                }
                // Every piece renders on its own: its fences are balanced, but for the last when
                // the text itself ends inside a block.
                let open_at_end = text.lines().filter(|l| is_fence(l)).count() % 2 == 1;
                for (i, p) in pieces.iter().enumerate() {
                    let odd = p.lines().filter(|l| is_fence(l)).count() % 2 == 1;
                    let last = i + 1 == pieces.len();
                    prop_assert_eq!(odd, last && open_at_end, "piece {} of {}: {:?}", i, pieces.len(), p);
                }
                // Fences are added and removed only as whole lines, and no other character is
                // lost, added or moved (a whitespace-only piece is sent as "…").
                let rebuilt: String = visible(&pieces.join("\n")).replace('…', "");
                prop_assert_eq!(rebuilt, visible(&text));
            }

            /// The streamed reply edits only its last message: a piece followed by another never
            /// changes as the text grows.
            #[test]
            fn finished_pieces_never_change(tokens in prop::collection::vec(token(), 0..400), limit in 200usize..=2000) {
                let mut text = String::new();
                let mut finished: Vec<String> = Vec::new();
                for t in tokens {
                    text.push_str(&t);
                    let pieces = split_message(&text, limit);
                    let done = &pieces[..pieces.len() - 1];
                    prop_assert!(done.len() >= finished.len());
                    prop_assert_eq!(&done[..finished.len()], &finished[..]);
                    finished = done.to_vec();
                }
            }

            #[test]
            fn text_that_fits_is_one_unchanged_piece(text in "[a-z \n🔧`]{1,600}") {
                prop_assume!(!text.trim().is_empty());
                prop_assert_eq!(split_message(&text, DISCORD_LIMIT), vec![text]);
            }
        }
    }
}
