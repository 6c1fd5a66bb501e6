//! The closest valid name to a misspelt one.

/// The candidate `name` was most likely meant to be, if any is close:
/// equal ignoring case, or within a small edit distance (transpositions
/// count once), or sharing most of a long prefix (`vaultCACert` for
/// `vaultCACertPath`).
pub fn closest<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    let mut best: Option<(usize, &'a str)> = None;
    for &candidate in candidates {
        let distance = strsim::damerau_levenshtein(&lower, &candidate.to_ascii_lowercase());
        if best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    let (distance, candidate) = best?;
    // Short names tolerate one edit, longer ones two: `rolName`, `roleNmae`,
    // `vaultAdress`, `vaultSkipTlsVerfy`.
    let allowed = if lower.len() >= 6 { 2 } else { 1 };
    if distance <= allowed {
        return Some(candidate);
    }
    // Jaro-Winkler favours a shared start, which catches truncated names.
    candidates
        .iter()
        .map(|&c| (strsim::jaro_winkler(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(score, _)| *score >= 0.93)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::closest;
    use crate::spc::{PARAMETERS, object_fields};

    #[test]
    fn suggests_the_parameter_meant() {
        for (typo, meant) in [
            ("rolename", "roleName"),
            ("roleNmae", "roleName"),
            ("role_name", "roleName"),
            ("vaultAdress", "vaultAddress"),
            ("vaultAddr", "vaultAddress"),
            ("vaultSkipTlsVerify", "vaultSkipTLSVerify"),
            ("vaultCACert", "vaultCACertPath"),
            ("vaultAuthMount", "vaultAuthMountPath"),
            ("cacheTtl", "cacheTTL"),
        ] {
            assert_eq!(closest(typo, PARAMETERS), Some(meant), "{typo}");
        }
    }

    #[test]
    fn suggests_the_field_meant() {
        for (typo, meant) in [
            ("secretkey", "secretKey"),
            ("objectname", "objectName"),
            ("secretPth", "secretPath"),
            ("filePermissions", "filePermission"),
            ("encodng", "encoding"),
        ] {
            assert_eq!(closest(typo, object_fields()), Some(meant), "{typo}");
        }
    }

    #[test]
    fn unrelated_names_get_no_suggestion() {
        for name in [
            "foo",
            "replicas",
            "serviceAccountName",
            "labels",
            "provider",
        ] {
            assert_eq!(closest(name, PARAMETERS), None, "{name}");
        }
    }
}
