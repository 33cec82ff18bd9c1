//! The `countries` and `asns` selectors, and the location facts they read.
//!
//! The engine never opens a database: the server (or `explain`, or a `[[test]]` case)
//! puts a `Location` into the request facts, and the indexes here map it to the rules
//! that admit it, like the method index does for methods.

use std::fmt;
use std::hash::Hash;

use rustc_hash::FxHashMap;

use super::bits::RuleBits;

/// The codes ISO 3166-1 has assigned (alpha-2, as in tzdata's `iso3166.tab`), plus
/// `XK`: user-assigned, but what MaxMind and DB-IP record for Kosovo.
const ASSIGNED: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO \
BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER \
ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN \
IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH \
MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN \
PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ \
TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW XK";

/// A country as the rules compare it: an upper-case ISO 3166-1 alpha-2 code, or `--`
/// for an address the database does not place. Two bytes, so comparing and hashing
/// cost nothing on the request path.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Country([u8; 2]);

impl Country {
    /// Not in the database, or a record without a country or registered country.
    pub const UNKNOWN: Country = Country(*b"--");

    /// Parses a code as written in a rule or a `[[test]]` (any case). Only assigned
    /// codes and `--` are accepted: a typo such as `UK` would otherwise be a rule that
    /// silently never matches.
    pub fn parse(written: &str) -> Result<Country, String> {
        if written == "--" {
            return Ok(Country::UNKNOWN);
        }
        let upper = written.to_ascii_uppercase();
        if let [a, b] = upper.as_bytes()
            && a.is_ascii_uppercase()
            && b.is_ascii_uppercase()
            && ASSIGNED.split(' ').any(|code| code == upper)
        {
            return Ok(Country([*a, *b]));
        }
        let hint = match upper.as_str() {
            "UK" => " (the United Kingdom is GB)",
            "EU" | "AP" => " (databases place addresses in countries, not regions)",
            _ => "",
        };
        Err(format!(
            "`{written}` is not an ISO 3166-1 alpha-2 country code{hint}; use \"--\" for addresses the database does not place"
        ))
    }

    /// A database record's `iso_code`: two ASCII letters, upper-cased; anything else
    /// places the address nowhere.
    pub fn from_record(iso_code: &str) -> Country {
        match iso_code.as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Country([a.to_ascii_uppercase(), b.to_ascii_uppercase()])
            }
            _ => Country::UNKNOWN,
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("a country code is ASCII")
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Country({})", self.as_str())
    }
}

/// Where the client IP is, as far as the GeoIP databases say. Left unknown when no
/// rule asks (the lookup is skipped) or no database is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// The record's country, else its registered country, else `--`.
    pub country: Country,
    /// The autonomous system announcing the address, when the ASN database knows it.
    pub asn: Option<u32>,
}

impl Default for Location {
    fn default() -> Self {
        Location {
            country: Country::UNKNOWN,
            asn: None,
        }
    }
}

/// Parses an autonomous system number from a rule or test. AS 0 and AS 4294967295 are
/// reserved (RFC 7607, RFC 7300) and never announce anything.
pub fn parse_asn(written: i64) -> Result<u32, String> {
    match u32::try_from(written) {
        Ok(asn) if asn != 0 && asn != u32::MAX => Ok(asn),
        _ => Err(format!(
            "`{written}` is not an autonomous system number (1 to 4294967294)"
        )),
    }
}

/// Index for a selector over one value per request (a country, an ASN): one
/// precomputed rule set per value some rule lists, and the rules without the selector
/// for every other value (including an unknown ASN).
#[derive(Debug, Clone)]
pub struct KeyIndex<K> {
    by_key: FxHashMap<K, RuleBits>,
    without_selector: RuleBits,
    used: bool,
}

impl<K: Copy + Eq + Hash> KeyIndex<K> {
    /// Builds the index; `without_selector` are the rules that admit any value.
    pub fn build<'a>(rules: impl IntoIterator<Item = (usize, &'a [K])>, without_selector: &RuleBits) -> Self
    where
        K: 'a,
    {
        let mut by_key: FxHashMap<K, RuleBits> = FxHashMap::default();
        let mut used = false;
        for (rule, listed) in rules {
            used = true;
            for key in listed {
                by_key
                    .entry(*key)
                    .or_insert_with(|| without_selector.clone())
                    .insert(rule);
            }
        }
        KeyIndex {
            by_key,
            without_selector: without_selector.clone(),
            used,
        }
    }

    /// The rules that admit `key`; `None` (an ASN the database does not know) is
    /// admitted only by rules without the selector.
    pub fn candidates(&self, key: Option<K>) -> &RuleBits {
        if self.by_key.is_empty() {
            // No rule lists a value (the common case): skip hashing.
            return &self.without_selector;
        }
        key.and_then(|key| self.by_key.get(&key))
            .unwrap_or(&self.without_selector)
    }

    /// Whether any rule has this selector (then the server looks the value up, and
    /// the engine intersects its candidates).
    pub fn is_used(&self) -> bool {
        self.used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn country_codes_parse_in_any_case() {
        assert_eq!(Country::parse("de").unwrap().as_str(), "DE");
        assert_eq!(Country::parse("De").unwrap(), Country::parse("DE").unwrap());
        assert_eq!(Country::parse("--").unwrap(), Country::UNKNOWN);
        assert_eq!(Country::parse("xk").unwrap().as_str(), "XK");
    }

    #[test]
    fn unassigned_or_malformed_country_codes_are_refused() {
        for written in ["UK", "EU", "ZZ", "D", "DEU", "", "-", "D1", "ÄÖ", " DE"] {
            assert!(Country::parse(written).is_err(), "{written:?} was accepted");
        }
        assert!(Country::parse("UK").unwrap_err().contains("GB"));
    }

    #[test]
    fn the_assigned_list_has_every_iso_code_once() {
        let codes: Vec<&str> = ASSIGNED.split(' ').collect();
        assert_eq!(codes.len(), 250, "249 assigned codes plus XK");
        let unique: std::collections::HashSet<&str> = codes.iter().copied().collect();
        assert_eq!(unique.len(), codes.len());
        assert!(codes.iter().all(|code| code.len() == 2));
    }

    #[test]
    fn database_codes_are_upper_cased_and_garbage_is_unknown() {
        assert_eq!(Country::from_record("fr").as_str(), "FR");
        assert_eq!(Country::from_record(""), Country::UNKNOWN);
        assert_eq!(Country::from_record("FRA"), Country::UNKNOWN);
        assert_eq!(Country::from_record("1A"), Country::UNKNOWN);
    }

    #[test]
    fn reserved_and_out_of_range_asns_are_refused() {
        assert_eq!(parse_asn(64496), Ok(64496));
        assert_eq!(parse_asn(4_294_967_294), Ok(4_294_967_294));
        for written in [0, -1, 4_294_967_295, 4_294_967_296] {
            assert!(parse_asn(written).is_err(), "{written} was accepted");
        }
    }

    #[test]
    fn a_key_index_admits_listed_values_and_rules_without_the_selector() {
        let mut without = RuleBits::empty(3);
        without.insert(2);
        let de = Country::parse("DE").unwrap();
        let fr = Country::parse("FR").unwrap();
        let listed_0 = [de];
        let listed_1 = [de, fr];
        let index = KeyIndex::build([(0, &listed_0[..]), (1, &listed_1[..])], &without);
        assert_eq!(index.candidates(Some(de)).iter().collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(index.candidates(Some(fr)).iter().collect::<Vec<_>>(), [1, 2]);
        assert_eq!(index.candidates(Some(Country::UNKNOWN)).iter().collect::<Vec<_>>(), [2]);
        assert_eq!(index.candidates(None).iter().collect::<Vec<_>>(), [2]);
        assert!(index.is_used());
    }
}
