//! Masked forms of detected values: what the scanner prints instead of the
//! value. Each keeps just enough to let a person find the row again (the
//! last digits of an SSN or phone number, the year of a birth date) and
//! never the whole value. Safe Harbor (45 CFR §164.514(b)(2)(i)(C)) allows
//! a year of birth except for ages over 89, so those lose the year too.

/// `***-**-1234` (dashed input) or `*****1234`. Callers pass the 9 digits.
pub(crate) fn ssn(digits: &str, dashed: bool) -> String {
    let last4 = tail(digits, 4);
    if dashed {
        format!("***-**-{last4}")
    } else {
        format!("*****{last4}")
    }
}

/// `***-***-1234`. Callers pass the 10 NANP digits.
pub(crate) fn phone(digits: &str) -> String {
    format!("***-***-{}", tail(digits, 4))
}

/// `j***@example.com`: the first character of the local part and the
/// domain.
pub(crate) fn email(addr: &str) -> String {
    match addr.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_string(),
    }
}

/// `1980-**-**`, or `****-**-**` when the person would be over 89 in
/// `this_year`.
pub(crate) fn dob(year: i32, this_year: i32) -> String {
    if this_year - year > 89 {
        "****-**-**".to_string()
    } else {
        format!("{year:04}-**-**")
    }
}

/// All but the last two characters starred: `******56`. Identifiers
/// shorter than 6 characters are starred whole.
pub(crate) fn identifier(v: &str) -> String {
    let n = v.chars().count();
    if n < 6 {
        return "*".repeat(n.max(1));
    }
    let keep: String = v.chars().skip(n - 2).collect();
    format!("{}{keep}", "*".repeat(n - 2))
}

/// Initials: `J. S.` (or `J. Q. S.`), from the words of a name.
pub(crate) fn name<'a>(words: impl IntoIterator<Item = &'a str>) -> String {
    let v: Vec<String> = words
        .into_iter()
        .filter_map(|w| w.chars().find(|c| c.is_alphabetic()))
        .map(|c| format!("{}.", c.to_uppercase()))
        .collect();
    if v.is_empty() {
        "*.".to_string()
    } else {
        v.join(" ")
    }
}

fn tail(s: &str, n: usize) -> &str {
    let mut i = s.len().saturating_sub(n);
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(ssn("219451234", true), "***-**-1234");
        assert_eq!(ssn("219451234", false), "*****1234");
        assert_eq!(phone("2125550147"), "***-***-0147");
        assert_eq!(email("jane.doe@example.org"), "j***@example.org");
        assert_eq!(dob(1980, 2026), "1980-**-**");
        assert_eq!(dob(1930, 2026), "****-**-**");
        assert_eq!(identifier("00123456"), "******56");
        assert_eq!(identifier("A12"), "***");
        assert_eq!(name(["jane", "Q", "Doe"]), "J. Q. D.");
    }
}
