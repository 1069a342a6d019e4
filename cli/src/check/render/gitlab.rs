//! A GitLab Code Quality report (`artifacts:reports:codequality`): a JSON array of
//! issues, each with a description, the rule as check_name, a fingerprint unique to the
//! problem, a severity on GitLab's scale and the file and line.

use policy::Severity;

use super::{full_message, Problem};

pub(super) fn render(problems: &[Problem]) -> String {
    let issues: Vec<serde_json::Value> = problems
        .iter()
        .enumerate()
        .map(|(index, problem)| {
            let earlier_twins = problems[..index]
                .iter()
                .filter(|earlier| {
                    (&earlier.file, &earlier.rule, &earlier.message) == (&problem.file, &problem.rule, &problem.message)
                })
                .count();
            // Input not checked blocks the merge; a refusal would take production down.
            let severity = match (problem.unchecked, problem.counts, problem.severity) {
                (true, _, _) => "blocker",
                (false, false, _) => "info",
                (false, true, Severity::Error) => "critical",
                (false, true, Severity::Warning) => "minor",
            };
            serde_json::json!({
                "type": "issue",
                "description": format!("{}: {}", problem.rule, problem.message),
                "content": { "body": full_message(problem) },
                "check_name": problem.rule,
                "fingerprint": fingerprint(problem, earlier_twins),
                "severity": severity,
                "location": {
                    "path": super::repository_path(&problem.file),
                    "lines": { "begin": problem.line.unwrap_or(1) },
                },
            })
        })
        .collect();
    let mut out = serde_json::to_string_pretty(&issues).unwrap_or_else(|_| "[]".to_string());
    out.push('\n');
    out
}

/// 32 hex digits that stay the same for the same problem however the lines above it
/// change (GitLab compares them between pipelines): two FNV-1a hashes of the file, the
/// rule, the message (which names the objects) and how many identical problems came
/// before it in the file.
fn fingerprint(problem: &Problem, earlier_twins: usize) -> String {
    let key = format!(
        "{}\0{}\0{}\0{earlier_twins}",
        problem.file, problem.rule, problem.message
    );
    let hash = |offset: u64| {
        key.bytes().fold(offset, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    format!(
        "{:016x}{:016x}",
        hash(0xcbf2_9ce4_8422_2325),
        hash(0x6c62_272e_07bb_0142)
    )
}
