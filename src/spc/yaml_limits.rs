//! Resource limits for the `objects` YAML, and messages for breaking them.
//!
//! The YAML comes from whoever may write a SecretProviderClass, so it is
//! hostile input: an alias bomb ("billion laughs"), deep nesting or a huge
//! scalar must fail fast with bounded memory.  serde-saphyr counts its budget
//! on the event stream *after* alias expansion, so these caps bound the work
//! and the memory of a parse no matter how aliases multiply the input.  The
//! values are far above any real SecretProviderClass (500 objects of ten
//! fields need about 10,000 nodes) and far below what hurts the provider.

use serde_saphyr::Error;
use serde_saphyr::budget::BudgetBreach;

/// Deepest nesting of sequences and mappings.  An object list is 2 deep; only
/// `secretArgs` nests further.
pub const MAX_YAML_DEPTH: usize = 32;
/// Most YAML nodes (scalars, sequences, mappings), counted after aliases are
/// expanded.
pub const MAX_YAML_NODES: usize = 50_000;
/// Most bytes of scalar text, counted after aliases are expanded: twice the
/// largest input, so aliases may repeat text but not multiply it.
pub const MAX_YAML_SCALAR_BYTES: usize = 2 * super::MAX_OBJECTS_YAML_BYTES;
/// Most alias uses (`*name`) in one `objects` text.
pub const MAX_YAML_ALIASES: usize = 1_000;
/// Most anchors (`&name`) in one `objects` text.
pub const MAX_YAML_ANCHORS: usize = 1_000;
/// Most events replayed from aliases (an event is a node's start or end).
pub const MAX_YAML_REPLAYED_EVENTS: usize = 2 * MAX_YAML_NODES;

/// serde-saphyr options for `objects`: HashiCorp-compatible scalars plus
/// explicit budgets (the crate's defaults suit large configuration files,
/// not an input a tenant controls).
pub(super) fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        // yaml.v3 (HashiCorp's parser) reads 0644 as octal.
        legacy_octal_numbers: true,
        // Error texts name the problem; a source excerpt would only repeat the input.
        with_snippet: false,
        budget: serde_saphyr::budget! {
            max_depth: MAX_YAML_DEPTH,
            // The scanner reads a whole flow collection ahead of the budget,
            // so deep `[[[…` meets this limit first; see `describe`.
            flow_nesting_limit: MAX_YAML_DEPTH,
            max_nodes: MAX_YAML_NODES,
            max_events: 2 * MAX_YAML_NODES + 16,
            max_total_scalar_bytes: MAX_YAML_SCALAR_BYTES,
            max_aliases: MAX_YAML_ALIASES,
            max_anchors: MAX_YAML_ANCHORS,
            max_merge_keys: MAX_YAML_ALIASES,
            max_documents: 1,
            max_recorded_anchor_events: MAX_YAML_REPLAYED_EVENTS,
            max_recorded_anchor_bytes: MAX_YAML_SCALAR_BYTES,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: MAX_YAML_REPLAYED_EVENTS,
            max_replay_stack_depth: MAX_YAML_DEPTH,
        },
    }
}

/// What is wrong with `objects`, for the SPC's author: a broken limit is
/// named with its value, any other parser error keeps its first line (the
/// rest would be a source excerpt).
pub(super) fn describe(error: &Error) -> String {
    let too_big = |what: String| {
        format!(
            "'objects' is too large after expanding YAML aliases: {what}; \
             write the objects out plainly and keep the list small"
        )
    };
    let too_deep = || {
        format!(
            "'objects' nests deeper than {MAX_YAML_DEPTH} levels; \
             an object list needs two, secretArgs a few more"
        )
    };
    match innermost(error) {
        // granit-parser's flow-nesting limit; it has no other structured form.
        Error::ExternalMessage { msg, .. } if msg == "recursion limit exceeded" => too_deep(),
        Error::Budget { breach, .. } => match breach {
            BudgetBreach::Depth { .. } => too_deep(),
            BudgetBreach::Nodes { .. } | BudgetBreach::Events { .. } => {
                too_big(format!("more than {MAX_YAML_NODES} YAML nodes"))
            }
            BudgetBreach::ScalarBytes { .. }
            | BudgetBreach::RecordedAnchorBytes { .. }
            | BudgetBreach::RecordedAnchorEvents { .. } => {
                too_big(format!("more than {MAX_YAML_SCALAR_BYTES} bytes of text"))
            }
            BudgetBreach::Aliases { .. }
            | BudgetBreach::AliasAnchorRatio { .. }
            | BudgetBreach::MergeKeys { .. } => format!(
                "'objects' uses too many YAML aliases (the limit is {MAX_YAML_ALIASES}, \
                 and at most ten per anchor)"
            ),
            BudgetBreach::Anchors { .. } => {
                format!("'objects' defines more than {MAX_YAML_ANCHORS} YAML anchors")
            }
            BudgetBreach::Documents { .. } => {
                "'objects' holds more than one YAML document; remove the '---' separators".into()
            }
            other => format!("'objects' breaks a YAML parser limit ({other:?})"),
        },
        Error::AliasReplayLimitExceeded { .. } | Error::AliasExpansionLimitExceeded { .. } => {
            too_big(format!(
                "more than {MAX_YAML_REPLAYED_EVENTS} replayed events"
            ))
        }
        Error::AliasReplayStackDepthExceeded { .. } => {
            format!("'objects' nests YAML aliases deeper than {MAX_YAML_DEPTH} levels")
        }
        Error::MultipleDocuments { .. } => {
            "'objects' holds more than one YAML document; remove the '---' separators".into()
        }
        _ => format!(
            "'objects' is not a valid YAML list of objects: {}",
            first_line(&error.to_string())
        ),
    }
}

/// The error under any alias-location or snippet wrappers.
fn innermost(mut error: &Error) -> &Error {
    while let Error::AliasError { error: inner, .. } | Error::WithSnippet { error: inner, .. } =
        error
    {
        error = inner;
    }
    error
}

/// The first line of a parser message (the rest is a source excerpt).
fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}
