//! Restricted tokens (a gitpat extension, issue 18): a token may be limited
//! to some repositories and, for pushes, to some refs. This is the one
//! place their patterns are parsed, validated, matched and stored.
//!
//! - A repository pattern is a path with `RepoPath`'s rules, whose last
//!   segment may be `*` (exactly one more segment: `team/*` matches
//!   `team/x`, not `team/a/x`) or `**` (one or more: `team/**` matches
//!   `team/x` and `team/a/x`). Matched case-insensitively, as paths are.
//! - A ref pattern starts with `refs/` and has at most one `*`, which
//!   matches any run of characters, `/` included (git's refspec globs);
//!   with the `*` filled in it is a valid git ref name. Matched exactly.
//! - At most [`MAX_PATTERNS`] of each; no empty list, no empty entry; a
//!   comma separates entries where a list is typed, so none holds one.
//!
//! Stored as the patterns one a line; no column (NULL) is no restriction.

use crate::git::store::RepoPath;

/// The most patterns a list may hold.
pub const MAX_PATTERNS: usize = 100;

/// What a repository pattern's last segment stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoMatch {
    /// The path itself.
    Exact,
    /// `prefix/*`: one more segment.
    Child,
    /// `prefix/**`: one or more segments.
    Descendant,
}

/// One repository pattern, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoPattern {
    /// As stored and shown (`.git` dropped from an exact path).
    text: String,
    kind: RepoMatch,
    /// Lowercase: the path for [`RepoMatch::Exact`], else the prefix with
    /// its trailing `/`.
    base: String,
}

impl RepoPattern {
    pub fn parse(input: &str) -> Result<RepoPattern, String> {
        let s = input.trim();
        if s.is_empty() {
            return Err("repositories: an entry is empty".into());
        }
        let (prefix, kind) = match s.rsplit_once('/') {
            Some((p, "*")) => (Some(p), RepoMatch::Child),
            Some((p, "**")) => (Some(p), RepoMatch::Descendant),
            _ => (None, RepoMatch::Exact),
        };
        if s == "*" || s == "**" {
            return Err(format!("repositories: {s:?} has no namespace; give team/{s}"));
        }
        if prefix.unwrap_or(s).contains('*') {
            return Err(format!(
                "repositories: {s:?}: '*' or '**' may only be the whole last segment (team/* or team/**)"
            ));
        }
        let bad = |e: crate::git::store::PathError| format!("repositories: {s:?}: {e}");
        match prefix {
            None => {
                let path = RepoPath::parse(s).map_err(bad)?;
                Ok(RepoPattern {
                    text: path.as_str().to_string(),
                    kind,
                    base: path.as_str().to_ascii_lowercase(),
                })
            }
            Some(p) => {
                // The prefix and one segment after it must make a path.
                RepoPath::parse(&format!("{p}/x")).map_err(bad)?;
                Ok(RepoPattern {
                    text: s.to_string(),
                    kind,
                    base: format!("{}/", p.to_ascii_lowercase()),
                })
            }
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// What it matches, for SQL: the kind and its lowercase base (the
    /// path, or the prefix ending in `/`).
    pub fn shape(&self) -> (RepoMatch, &str) {
        (self.kind, &self.base)
    }

    /// Whether repository `path` (namespace/name) matches, ignoring case.
    pub fn matches(&self, path: &str) -> bool {
        let path = path.strip_suffix(".git").unwrap_or(path).to_ascii_lowercase();
        match self.kind {
            RepoMatch::Exact => path == self.base,
            RepoMatch::Child => path
                .strip_prefix(&self.base)
                .is_some_and(|rest| !rest.is_empty() && !rest.contains('/')),
            RepoMatch::Descendant => path
                .strip_prefix(&self.base)
                .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/')),
        }
    }
}

/// One ref pattern, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefPattern {
    text: String,
    /// Where the `*` is, if there is one.
    star: Option<usize>,
}

impl RefPattern {
    pub fn parse(input: &str) -> Result<RefPattern, String> {
        let s = input.trim();
        if s.is_empty() {
            return Err("push_ref_patterns: an entry is empty".into());
        }
        if !s.starts_with("refs/") {
            return Err(format!(
                "push_ref_patterns: {s:?} does not start with refs/ (give full names: refs/heads/..., refs/tags/...)"
            ));
        }
        if s.matches('*').count() > 1 {
            return Err(format!("push_ref_patterns: {s:?} has more than one '*'"));
        }
        if s.contains(',') {
            return Err(format!("push_ref_patterns: {s:?}: a comma separates patterns"));
        }
        let star = s.find('*');
        if !git2::Reference::is_valid_name(&s.replacen('*', "x", 1)) {
            return Err(format!("push_ref_patterns: {s:?} is not a valid git ref name"));
        }
        Ok(RefPattern {
            text: s.to_string(),
            star,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether full ref name `name` matches (the `*` matching any run of
    /// characters, `/` and none included, as in a git refspec).
    pub fn matches(&self, name: &str) -> bool {
        match self.star {
            None => name == self.text,
            Some(i) => {
                let (prefix, suffix) = (&self.text[..i], &self.text[i + 1..]);
                name.len() >= prefix.len() + suffix.len() && name.starts_with(prefix) && name.ends_with(suffix)
            }
        }
    }
}

/// A token's restriction: `None` for a list is no restriction there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Restriction {
    pub repositories: Option<Vec<RepoPattern>>,
    pub push_refs: Option<Vec<RefPattern>>,
}

fn parse_list<T>(
    field: &str,
    entries: Option<&[String]>,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<Vec<T>>, String> {
    let Some(entries) = entries else { return Ok(None) };
    if entries.is_empty() {
        return Err(format!("{field}: the list is empty (leave it out for no restriction)"));
    }
    if entries.len() > MAX_PATTERNS {
        return Err(format!("{field}: at most {MAX_PATTERNS} patterns"));
    }
    entries
        .iter()
        .map(|e| parse(e))
        .collect::<Result<Vec<T>, String>>()
        .map(Some)
}

impl Restriction {
    /// Validates the lists a caller gives (`None`: no restriction there).
    /// The error names the field first (`repositories: ...`,
    /// `push_ref_patterns: ...`).
    pub fn parse(repositories: Option<&[String]>, push_refs: Option<&[String]>) -> Result<Restriction, String> {
        Ok(Restriction {
            repositories: parse_list("repositories", repositories, RepoPattern::parse)?,
            push_refs: parse_list("push_ref_patterns", push_refs, RefPattern::parse)?,
        })
    }

    /// The restriction as stored. A stored entry that no longer parses is
    /// dropped, so a damaged list allows less, never more.
    pub fn from_db(repositories: Option<&str>, push_refs: Option<&str>) -> Restriction {
        fn lines<T>(s: Option<&str>, parse: impl Fn(&str) -> Result<T, String>) -> Option<Vec<T>> {
            s.map(|s| s.lines().filter_map(|l| parse(l).ok()).collect())
        }
        Restriction {
            repositories: lines(repositories, RepoPattern::parse),
            push_refs: lines(push_refs, RefPattern::parse),
        }
    }

    /// The repositories column: the patterns one a line, or NULL.
    pub fn repositories_db(&self) -> Option<String> {
        self.repository_list().map(|l| l.join("\n"))
    }

    /// The push_ref_patterns column: the patterns one a line, or NULL.
    pub fn push_refs_db(&self) -> Option<String> {
        self.push_ref_list().map(|l| l.join("\n"))
    }

    /// The repository patterns as text, for JSON and pages.
    pub fn repository_list(&self) -> Option<Vec<String>> {
        self.repositories
            .as_ref()
            .map(|l| l.iter().map(|p| p.as_str().to_string()).collect())
    }

    /// The ref patterns as text, for JSON and pages.
    pub fn push_ref_list(&self) -> Option<Vec<String>> {
        self.push_refs
            .as_ref()
            .map(|l| l.iter().map(|p| p.as_str().to_string()).collect())
    }

    pub fn is_restricted(&self) -> bool {
        self.repositories.is_some() || self.push_refs.is_some()
    }

    /// May the token reach repository `path`?
    pub fn allows_repo(&self, path: &str) -> bool {
        self.repositories
            .as_ref()
            .is_none_or(|l| l.iter().any(|p| p.matches(path)))
    }

    /// May the token push to (create, move, delete) ref `name`?
    pub fn allows_push(&self, name: &str) -> bool {
        self.push_refs
            .as_ref()
            .is_none_or(|l| l.iter().any(|p| p.matches(name)))
    }
}

/// A typed list (CLI flag, form field): entries between commas, trimmed;
/// empty entries are kept, for [`Restriction::parse`] to refuse.
pub fn split_list(s: &str) -> Vec<String> {
    s.split(',').map(|e| e.trim().to_string()).collect()
}

/// The refusal of a push command to a ref the token may not push to.
pub fn push_refused(name: &str) -> String {
    format!("token may not push to {name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_patterns_parse_or_say_why() {
        let ok = [
            ("alice/tools", "alice/tools"),
            ("alice/tools.git", "alice/tools"),
            (" Team/Sub/x ", "Team/Sub/x"),
            ("team/*", "team/*"),
            ("team/**", "team/**"),
            ("team/a_b/**", "team/a_b/**"),
        ];
        for (input, text) in ok {
            assert_eq!(
                RepoPattern::parse(input).map(|p| p.text),
                Ok(text.to_string()),
                "{input}"
            );
        }
        let bad = [
            ("", "empty"),
            ("tools", "no namespace"),
            ("*", "no namespace"),
            ("**", "no namespace"),
            ("*/tools", "last segment"),
            ("team/*/x", "last segment"),
            ("team/**/x", "last segment"),
            ("team/a*", "last segment"),
            ("team/***", "last segment"),
            ("team//*", "empty segment"),
            ("/team/*", "absolute"),
            ("team/../x", "starts with"),
            ("team.git/*", "ends with .git"),
            ("te am/x", "not allowed"),
            (".team/*", "starts with"),
        ];
        for (input, why) in bad {
            let e = RepoPattern::parse(input).expect_err(input);
            assert!(e.starts_with("repositories"), "{input}: {e}");
            assert!(e.contains(why), "{input}: {e}");
        }
    }

    #[test]
    fn repository_patterns_match_ignoring_case() {
        let cases = [
            ("alice/tools", "alice/tools", true),
            ("alice/tools", "Alice/TOOLS", true),
            ("alice/tools", "alice/tools.git", true),
            ("alice/tools", "alice/tool", false),
            ("alice/tools", "alice/tools2", false),
            ("alice/tools", "alice/tools/x", false),
            ("team/*", "team/x", true),
            ("team/*", "TEAM/X", true),
            ("team/*", "team/a/x", false),
            ("team/*", "team", false),
            ("team/*", "teamx/y", false),
            ("team/*", "other/team/x", false),
            ("team/**", "team/x", true),
            ("team/**", "team/a/x", true),
            ("Team/**", "team/A/b/c", true),
            ("team/**", "team", false),
            ("team/**", "teams/x", false),
            ("team/a_b/*", "team/aXb/x", false),
            ("team/a_b/*", "team/a_b/x", true),
        ];
        for (pattern, path, want) in cases {
            let p = RepoPattern::parse(pattern).unwrap();
            assert_eq!(p.matches(path), want, "{pattern} ~ {path}");
        }
    }

    #[test]
    fn ref_patterns_parse_or_say_why() {
        for ok in [
            "refs/heads/main",
            "refs/heads/feature/*",
            "refs/tags/v*",
            "refs/*",
            "refs/heads/*-wip",
        ] {
            assert_eq!(RefPattern::parse(ok).map(|p| p.text), Ok(ok.to_string()));
        }
        let bad = [
            ("", "empty"),
            ("heads/main", "refs/"),
            ("main", "refs/"),
            ("refs/heads/*/*", "more than one"),
            ("refs/heads/a..b", "not a valid"),
            ("refs/heads/a b", "not a valid"),
            ("refs/heads/x.lock", "not a valid"),
            ("refs/heads/a,b", "comma"),
            ("refs/heads/feature/", "not a valid"),
            ("refs/heads/a\nb", "not a valid"),
        ];
        for (input, why) in bad {
            let e = RefPattern::parse(input).expect_err(input);
            assert!(e.starts_with("push_ref_patterns"), "{input}: {e}");
            assert!(e.contains(why), "{input}: {e}");
        }
    }

    #[test]
    fn ref_patterns_match_as_refspec_globs() {
        let cases = [
            ("refs/heads/main", "refs/heads/main", true),
            ("refs/heads/main", "refs/heads/Main", false),
            ("refs/heads/main", "refs/heads/main2", false),
            ("refs/heads/feature/*", "refs/heads/feature/x", true),
            ("refs/heads/feature/*", "refs/heads/feature/a/b", true),
            ("refs/heads/feature/*", "refs/heads/feature", false),
            ("refs/heads/feature/*", "refs/heads/features/x", false),
            ("refs/tags/v*", "refs/tags/v1.0", true),
            ("refs/tags/v*", "refs/tags/x1.0", false),
            ("refs/heads/*-wip", "refs/heads/a/b-wip", true),
            ("refs/heads/*-wip", "refs/heads/a-wip2", false),
            ("refs/heads/ab*ba", "refs/heads/aba", false),
        ];
        for (pattern, name, want) in cases {
            let p = RefPattern::parse(pattern).unwrap();
            assert_eq!(p.matches(name), want, "{pattern} ~ {name}");
        }
    }

    #[test]
    fn lists_are_checked_whole_and_stored_one_a_line() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(Restriction::parse(None, None), Ok(Restriction::default()));
        assert!(!Restriction::default().is_restricted());
        assert!(Restriction::default().allows_repo("any/thing"));
        assert!(Restriction::default().allows_push("refs/heads/main"));
        let e = Restriction::parse(Some(&[]), None).unwrap_err();
        assert!(e.starts_with("repositories: the list is empty"), "{e}");
        let e = Restriction::parse(None, Some(&[])).unwrap_err();
        assert!(e.starts_with("push_ref_patterns: the list is empty"), "{e}");
        let e = Restriction::parse(Some(&s(&["a/b", ""])), None).unwrap_err();
        assert!(e.contains("empty"), "{e}");
        let many: Vec<String> = (0..=MAX_PATTERNS).map(|i| format!("a/r{i}")).collect();
        assert!(Restriction::parse(Some(&many), None)
            .unwrap_err()
            .contains("at most 100"));
        assert!(Restriction::parse(Some(&many[..MAX_PATTERNS]), None).is_ok());
        let refs: Vec<String> = (0..=MAX_PATTERNS).map(|i| format!("refs/heads/r{i}")).collect();
        assert!(Restriction::parse(None, Some(&refs))
            .unwrap_err()
            .contains("at most 100"));

        let r = Restriction::parse(
            Some(&s(&["alice/tools.git", "team/*"])),
            Some(&s(&["refs/heads/feature/*", "refs/tags/v*"])),
        )
        .unwrap();
        assert!(r.is_restricted());
        assert_eq!(r.repositories_db().as_deref(), Some("alice/tools\nteam/*"));
        assert_eq!(r.push_refs_db().as_deref(), Some("refs/heads/feature/*\nrefs/tags/v*"));
        let back = Restriction::from_db(r.repositories_db().as_deref(), r.push_refs_db().as_deref());
        assert_eq!(back, r);
        assert!(r.allows_repo("ALICE/tools") && r.allows_repo("team/x") && !r.allows_repo("team/a/x"));
        assert!(r.allows_push("refs/tags/v2") && !r.allows_push("refs/heads/main"));
        // Only one list restricts the other nothing.
        let only_repos = Restriction::parse(Some(&s(&["alice/tools"])), None).unwrap();
        assert!(only_repos.allows_push("refs/heads/main") && !only_repos.allows_repo("bob/x"));
        assert_eq!(only_repos.push_refs_db(), None);
        // A damaged stored list allows less, never more.
        let damaged = Restriction::from_db(Some("nope\n"), Some("main"));
        assert!(!damaged.allows_repo("nope/x") && !damaged.allows_push("main"));
        assert_eq!(split_list("a/b, c/*,,"), s(&["a/b", "c/*", "", ""]));
        assert_eq!(push_refused("refs/heads/x"), "token may not push to refs/heads/x");
    }
}
