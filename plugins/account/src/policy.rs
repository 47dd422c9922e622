//! What counts as a valid email, password, name and address.

use polyscale_guest::Invalid;
use polyscale_guest::bindings::types::FieldError;

use crate::bindings::exports::polyscale::commerce::accounts::Address;

pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 128;
pub const MAX_NAME_CHARS: usize = 100;

/// Trimmed and lower-cased, so `Ann@Example.COM ` and `ann@example.com`
/// are one account. Addresses need a dotted domain.
pub fn email(field: &str, raw: &str) -> Result<String, FieldError> {
    let normalized = raw.trim().to_lowercase();
    let invalid = || FieldError::invalid(field, "INVALID_EMAIL", "not a valid email address");
    let parsed = email_address::EmailAddress::parse_with_options(
        &normalized,
        email_address::Options::default().without_display_text(),
    )
    .map_err(|_| invalid())?;
    let domain = parsed.domain();
    if normalized.len() > 254 || !domain.contains('.') || domain.starts_with('[') || domain.ends_with('.') {
        return Err(invalid());
    }
    Ok(normalized)
}

/// NIST SP 800-63B: a length floor, no composition rules, and no password
/// from the lists attackers try first.
pub fn password(field: &str, password: &str, email: &str) -> Result<(), FieldError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(FieldError::invalid(
            field,
            "PASSWORD_TOO_SHORT",
            format!("use at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(FieldError::invalid(
            field,
            "PASSWORD_TOO_LONG",
            format!("use at most {MAX_PASSWORD_CHARS} characters"),
        ));
    }
    let lower = password.to_lowercase();
    if COMMON_PASSWORDS.contains(&lower.as_str()) || lower.chars().all(|c| c == lower.chars().next().unwrap_or(' ')) {
        return Err(FieldError::invalid(field, "PASSWORD_TOO_COMMON", "this password is too easy to guess"));
    }
    let local = email.split('@').next().unwrap_or_default();
    if !local.is_empty() && (lower == email || lower.contains(local) && local.len() >= 4) {
        return Err(FieldError::invalid(field, "PASSWORD_CONTAINS_EMAIL", "the password must not contain your email"));
    }
    Ok(())
}

pub fn name(field: &str, raw: &str) -> Result<String, FieldError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        Err(FieldError::invalid(field, "REQUIRED", "must not be empty"))
    } else if trimmed.chars().count() > MAX_NAME_CHARS {
        Err(FieldError::invalid(field, "TOO_LONG", format!("must be at most {MAX_NAME_CHARS} characters")))
    } else if trimmed.chars().any(char::is_control) {
        Err(FieldError::invalid(field, "INVALID_CHARACTERS", "must not contain control characters"))
    } else {
        Ok(trimmed.to_string())
    }
}

/// Checks every part of an address; returns it trimmed.
pub fn address(field: &str, a: Address, errors: &mut Vec<FieldError>) -> Option<Address> {
    let mut part = |name: &str, value: &str, max: usize| -> Option<String> {
        let v = value.trim();
        let path = format!("{field}.{name}");
        if v.is_empty() {
            errors.push(FieldError::invalid(&path, "REQUIRED", "must not be empty"));
            None
        } else if v.chars().count() > max || v.chars().any(char::is_control) {
            errors.push(FieldError::invalid(&path, "INVALID", format!("must be at most {max} printable characters")));
            None
        } else {
            Some(v.to_string())
        }
    };
    let line1 = part("line1", &a.line1, 200);
    let line2 = a.line2.filter(|l| !l.trim().is_empty()).map(|l| part("line2", &l, 200));
    let city = part("city", &a.city, 100);
    let region = a.region.filter(|r| !r.trim().is_empty()).map(|r| part("region", &r, 100));
    let postal_code = part("postalCode", &a.postal_code, 20);
    let country = a.country.trim().to_uppercase();
    let country_ok = country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase());
    if !country_ok {
        errors.push(FieldError::invalid(
            &format!("{field}.country"),
            "INVALID_COUNTRY",
            "use an ISO 3166-1 alpha-2 code, e.g. DE",
        ));
    }
    Some(Address {
        line1: line1?,
        line2: match line2 {
            Some(l) => Some(l?),
            None => None,
        },
        city: city?,
        region: match region {
            Some(r) => Some(r?),
            None => None,
        },
        postal_code: postal_code?,
        country: country_ok.then_some(country)?,
    })
}

/// The passwords attackers try first (a short excerpt of the public
/// breach-derived lists), compared lower-cased.
const COMMON_PASSWORDS: &[&str] = &[
    "password",
    "password1",
    "password12",
    "password123",
    "password1234",
    "passw0rd",
    "p@ssw0rd",
    "p@ssword",
    "12345678",
    "123456789",
    "1234567890",
    "12345678910",
    "87654321",
    "11111111",
    "00000000",
    "123123123",
    "qwertyui",
    "qwertyuiop",
    "qwerty123",
    "qwerty12",
    "1q2w3e4r",
    "1q2w3e4r5t",
    "1qaz2wsx",
    "zaq12wsx",
    "asdfghjk",
    "asdfghjkl",
    "zxcvbnm1",
    "iloveyou",
    "iloveyou1",
    "sunshine",
    "princess",
    "football",
    "baseball",
    "welcome1",
    "welcome123",
    "letmein1",
    "letmein123",
    "abc12345",
    "abcd1234",
    "admin123",
    "administrator",
    "trustno1",
    "superman",
    "batman123",
    "starwars",
    "whatever",
    "computer",
    "internet",
    "changeme",
    "changeme1",
    "default1",
    "monkey123",
    "dragon123",
    "master123",
    "shadow123",
    "michael1",
    "jennifer",
    "charlie1",
    "freedom1",
    "mustang1",
    "access14",
    "hello123",
    "secret123",
    "test1234",
    "testtest",
    "polyscale",
    "polyscale1",
    "commerce",
    "shopping",
    "12qwaszx",
    "q1w2e3r4",
    "a1b2c3d4",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(email("email", "  Ann.Lee+shop@Example.COM ").unwrap(), "ann.lee+shop@example.com");
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@localhost",
            "ann@@example.com",
            "ann@example.com.",
            "a b@example.com",
        ] {
            assert!(email("email", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_follow_the_policy() {
        assert!(password("p", "correct horse battery", "ann@example.com").is_ok());
        assert_eq!(password("p", "short", "ann@example.com").unwrap_err().code, "PASSWORD_TOO_SHORT");
        assert_eq!(password("p", "Password123", "ann@example.com").unwrap_err().code, "PASSWORD_TOO_COMMON");
        assert_eq!(password("p", "aaaaaaaaaaaa", "ann@example.com").unwrap_err().code, "PASSWORD_TOO_COMMON");
        assert_eq!(password("p", "annlee-is-great", "annlee@example.com").unwrap_err().code, "PASSWORD_CONTAINS_EMAIL");
        assert_eq!(password("p", &"x1".repeat(100), "ann@example.com").unwrap_err().code, "PASSWORD_TOO_LONG");
    }
}
