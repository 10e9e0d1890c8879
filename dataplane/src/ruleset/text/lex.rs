//! The tokenizer of `iptables-restore` lines: words, quotes, backslash escapes.

/// A word of a line and its 1-based column.
#[derive(Debug, Clone)]
pub(super) struct Tok {
    pub(super) s: String,
    pub(super) col: usize,
}

/// Splits a line as iptables-restore does: whitespace separates, `"` or `'` quote,
/// a backslash escapes the next character.
pub(super) fn tokenize(line: &str) -> Result<Vec<Tok>, (usize, String)> {
    let mut out = Vec::new();
    let mut cur: Option<Tok> = None;
    let mut quote: Option<(char, usize)> = None;
    let mut escaped = false;
    for (i, ch) in line.chars().enumerate() {
        let col = i + 1;
        if escaped {
            cur.get_or_insert(Tok {
                s: String::new(),
                col,
            })
            .s
            .push(ch);
            escaped = false;
            continue;
        }
        if ch == '\\' {
            cur.get_or_insert(Tok {
                s: String::new(),
                col,
            });
            escaped = true;
            continue;
        }
        if let Some((q, _)) = quote {
            if ch == q {
                quote = None;
            } else {
                cur.as_mut().expect("token open in quote").s.push(ch);
            }
            continue;
        }
        if ch == '"' || ch == '\'' {
            cur.get_or_insert(Tok {
                s: String::new(),
                col,
            });
            quote = Some((ch, col));
            continue;
        }
        if ch.is_whitespace() {
            if let Some(t) = cur.take() {
                out.push(t);
            }
            continue;
        }
        cur.get_or_insert(Tok {
            s: String::new(),
            col,
        })
        .s
        .push(ch);
    }
    if let Some((_, col)) = quote {
        return Err((col, "unterminated quote".into()));
    }
    if escaped {
        return Err((line.chars().count(), "backslash at end of line".into()));
    }
    out.extend(cur);
    Ok(out)
}
