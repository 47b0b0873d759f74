//! A tiny glob matcher for `--tensors`: `*` matches any run of bytes, `?` one byte.

/// True if `text` matches `pattern`.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // Position of the last `*` and the text position it was tried at (classic backtracking,
    // linear in practice, no recursion).
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn matches() {
        assert!(glob_match("blk.*.attn_q.weight", "blk.12.attn_q.weight"));
        assert!(glob_match("*", ""));
        assert!(glob_match("blk.?.ffn*", "blk.3.ffn_up.weight"));
        assert!(!glob_match("blk.?.ffn*", "blk.13.ffn_up.weight"));
        assert!(!glob_match("*norm", "output_norm.weight"));
        assert!(glob_match("*norm*", "output_norm.weight"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
    }
}
