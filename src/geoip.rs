//! Where a client is (SPEC §2 `[geoip]`): the country and autonomous system of an IP
//! address, from MaxMind DB files (GeoLite2, GeoIP2, DB-IP lite).
//!
//! Each file is read into memory whole, never memory-mapped: providers replace the
//! files weekly, and a mapped file rewritten in place turns lookups into SIGBUS. The
//! databases are files of the config, so the reload watcher sees a replaced file and
//! loads a new generation with a new reader; requests in flight keep the old one.
//! A reload that does not touch a database keeps its reader (`open` reuses a reader
//! whose file is unchanged), so the readers outlive config generations as SPEC §8 asks.
//!
//! Lookups are pure reads of that memory. They run once per request and only for the
//! selectors some rule uses.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use maxminddb::{PathElement, Reader};

use crate::rules::{Country, Location, RuleSet};

/// What a database is read for; the database's own type must say it has those records
/// (an ASN file given as `country_database` would otherwise place every client at
/// `--` without a word).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `country_database`: records with `country` / `registered_country`.
    Country,
    /// `asn_database`: records with `autonomous_system_number`.
    Asn,
}

impl Kind {
    /// Words one of which a database type of this kind contains (`GeoLite2-Country`,
    /// `GeoIP2-City`, `DBIP-Country-Lite`, `GeoLite2-ASN`, `GeoIP2-ISP`, ...).
    fn type_words(self) -> &'static [&'static str] {
        match self {
            Kind::Country => &["country", "city", "enterprise"],
            Kind::Asn => &["asn", "isp", "enterprise"],
        }
    }
}

/// One database file, in memory.
pub struct Database {
    path: PathBuf,
    stamp: FileStamp,
    reader: Reader<Vec<u8>>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("path", &self.path)
            .field("database_type", &self.database_type())
            .finish_non_exhaustive()
    }
}

impl Database {
    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The type the file declares, such as `GeoLite2-Country`.
    pub fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// When the provider built it (`check` warns about stale databases).
    pub fn built(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(self.reader.metadata().build_epoch)
    }

    /// The file's size in memory.
    pub fn bytes(&self) -> u64 {
        self.stamp.len
    }

    /// The record's `country.iso_code`, else `registered_country.iso_code` (GeoIP2,
    /// GeoLite2 and DB-IP records share these names). Only those two values are
    /// decoded; names in eight languages and the rest are skipped.
    fn country(&self, ip: IpAddr) -> Country {
        let Ok(found) = self.reader.lookup(ip) else {
            // An IPv6 address in an IPv4-only database: not placed.
            return Country::UNKNOWN;
        };
        let code = |place: &str| {
            found
                .decode_path::<&str>(&[PathElement::Key(place), PathElement::Key("iso_code")])
                .ok()
                .flatten()
        };
        code("country")
            .or_else(|| code("registered_country"))
            .map_or(Country::UNKNOWN, Country::from_record)
    }

    /// The record's `autonomous_system_number` (GeoLite2-ASN, GeoIP2-ISP, DB-IP ASN).
    fn asn(&self, ip: IpAddr) -> Option<u32> {
        let found = self.reader.lookup(ip).ok()?;
        found
            .decode_path::<u32>(&[PathElement::Key("autonomous_system_number")])
            .ok()
            .flatten()
    }
}

/// The `[geoip]` databases of one config, and which lookups its rules need.
#[derive(Debug, Clone, Default)]
pub struct GeoIp {
    country: Option<Arc<Database>>,
    asn: Option<Arc<Database>>,
    look_up_country: bool,
    look_up_asn: bool,
}

impl GeoIp {
    /// The databases, looked up only for the selectors `rules` use.
    pub fn new(country: Option<Arc<Database>>, asn: Option<Arc<Database>>, rules: &RuleSet) -> Self {
        GeoIp {
            look_up_country: country.is_some() && rules.uses_countries(),
            look_up_asn: asn.is_some() && rules.uses_asns(),
            country,
            asn,
        }
    }

    /// Where `ip` is: the record's country, else its registered country, else `--`;
    /// and its ASN. Each is left unknown when no rule asks for it.
    #[inline]
    pub fn locate(&self, ip: IpAddr) -> Location {
        let mut location = Location::default();
        if self.look_up_country
            && let Some(database) = &self.country
        {
            location.country = database.country(ip);
        }
        if self.look_up_asn
            && let Some(database) = &self.asn
        {
            location.asn = database.asn(ip);
        }
        location
    }

    /// `locate`, with a stated country or ASN (from a `[[test]]` case or `explain`)
    /// taking the place of the database's answer.
    pub fn locate_stated(&self, ip: IpAddr, country: Option<Country>, asn: Option<u32>) -> Location {
        let located = self.locate(ip);
        Location {
            country: country.unwrap_or(located.country),
            asn: asn.or(located.asn),
        }
    }

    /// Whether `locate` looks the country up (some rule lists `countries`); the access
    /// log and `explain` show it only then.
    pub fn looks_up_country(&self) -> bool {
        self.look_up_country
    }

    /// Whether `locate` looks the ASN up (some rule lists `asns`).
    pub fn looks_up_asn(&self) -> bool {
        self.look_up_asn
    }

    /// `country_database`, when configured.
    pub fn country_database(&self) -> Option<&Database> {
        self.country.as_deref()
    }

    /// `asn_database`, when configured.
    pub fn asn_database(&self) -> Option<&Database> {
        self.asn.as_deref()
    }
}

/// What identifies a file's contents without reading it: a replaced file (new inode)
/// or one rewritten in place (new size or mtime) differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl FileStamp {
    fn of(metadata: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(metadata);
        #[cfg(not(unix))]
        let inode = 0;
        FileStamp {
            len: metadata.len(),
            modified: metadata.modified().ok(),
            inode,
        }
    }
}

/// Readers still in use by some config generation. Weak, so a database no generation
/// uses is freed; consulted so that a reload that leaves a database file alone keeps
/// its reader instead of reading tens of megabytes again.
static OPEN: Mutex<Vec<Weak<Database>>> = Mutex::new(Vec::new());

/// Reads the database at `path` into memory and checks it: a valid MaxMind DB whose
/// every node and record decodes, of a type that holds `kind` records. A file that is
/// unchanged since a reader still in use read it gives that reader.
pub fn open(path: &Path, kind: Kind) -> Result<Arc<Database>, String> {
    let metadata = std::fs::metadata(path).map_err(|error| format!("cannot read `{}`: {error}", path.display()))?;
    let stamp = FileStamp::of(&metadata);
    let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
    open.retain(|weak| weak.strong_count() > 0);
    if let Some(database) = open
        .iter()
        .filter_map(Weak::upgrade)
        .find(|database| database.path == path && database.stamp == stamp)
    {
        return Ok(database);
    }
    let bytes = std::fs::read(path).map_err(|error| format!("cannot read `{}`: {error}", path.display()))?;
    let database = Arc::new(parse(path, stamp, bytes, kind)?);
    open.push(Arc::downgrade(&database));
    Ok(database)
}

fn parse(path: &Path, stamp: FileStamp, bytes: Vec<u8>, kind: Kind) -> Result<Database, String> {
    let invalid =
        |error: maxminddb::MaxMindDbError| format!("`{}` is not a valid MaxMind DB file: {error}", path.display());
    let reader = Reader::from_source(bytes).map_err(invalid)?;
    reader.verify().map_err(invalid)?;
    let database_type = reader.metadata().database_type.to_ascii_lowercase();
    if !kind.type_words().iter().any(|word| database_type.contains(word)) {
        return Err(format!(
            "`{}` is a `{}` database, which has no {} records (expected a type naming {})",
            path.display(),
            reader.metadata().database_type,
            match kind {
                Kind::Country => "country",
                Kind::Asn => "autonomous system",
            },
            kind.type_words().join(", ")
        ));
    }
    Ok(Database {
        path: path.to_path_buf(),
        stamp,
        reader,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/geoip")
            .join(name)
    }

    fn country_of(database: &Database, ip: &str) -> String {
        database.country(ip.parse().unwrap()).to_string()
    }

    #[test]
    fn ipv4_and_ipv6_clients_get_their_records_country() {
        let database = open(&fixture("country-v1.mmdb"), Kind::Country).unwrap();
        assert_eq!(country_of(&database, "198.51.100.7"), "DE");
        assert_eq!(country_of(&database, "203.0.113.200"), "KP");
        assert_eq!(country_of(&database, "2001:db8:de::1"), "DE");
        assert_eq!(country_of(&database, "2001:db8:5:1::9"), "US");
    }

    #[test]
    fn a_record_without_a_country_gives_its_registered_country() {
        let database = open(&fixture("country-v1.mmdb"), Kind::Country).unwrap();
        assert_eq!(country_of(&database, "192.0.2.1"), "FR");
    }

    #[test]
    fn addresses_the_database_does_not_place_are_unknown() {
        let database = open(&fixture("country-v1.mmdb"), Kind::Country).unwrap();
        assert_eq!(
            country_of(&database, "192.0.2.200"),
            "--",
            "record with neither country"
        );
        assert_eq!(country_of(&database, "127.0.0.1"), "--");
        assert_eq!(country_of(&database, "2001:db8:ffff::1"), "--");
    }

    #[test]
    fn an_ipv6_client_in_an_ipv4_only_database_is_unknown() {
        let database = open(&fixture("country-ipv4-only.mmdb"), Kind::Country).unwrap();
        assert_eq!(country_of(&database, "198.51.100.7"), "DE");
        assert_eq!(country_of(&database, "2001:db8:de::1"), "--");
    }

    #[test]
    fn asns_come_from_the_asn_database() {
        let database = open(&fixture("asn.mmdb"), Kind::Asn).unwrap();
        assert_eq!(database.asn("198.51.100.7".parse().unwrap()), Some(64496));
        assert_eq!(database.asn("2001:db8:de::1".parse().unwrap()), Some(64496));
        assert_eq!(database.asn("203.0.113.1".parse().unwrap()), Some(64511));
        assert_eq!(database.asn("192.0.2.1".parse().unwrap()), None);
    }

    #[test]
    fn a_database_of_the_wrong_kind_is_refused() {
        let error = open(&fixture("asn.mmdb"), Kind::Country).unwrap_err();
        assert!(error.contains("GeoLite2-ASN"), "{error}");
        assert!(open(&fixture("country-v1.mmdb"), Kind::Asn).is_err());
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused() {
        let error = open(&fixture("make.py"), Kind::Country).unwrap_err();
        assert!(error.contains("not a valid MaxMind DB file"), "{error}");
        let truncated = tempfile::NamedTempFile::new().unwrap();
        let bytes = std::fs::read(fixture("country-v1.mmdb")).unwrap();
        std::fs::write(truncated.path(), &bytes[..bytes.len() / 2]).unwrap();
        assert!(open(truncated.path(), Kind::Country).is_err());
    }

    #[test]
    fn an_unchanged_file_reuses_the_reader_in_use_and_a_replaced_one_is_read_again() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("country.mmdb");
        std::fs::copy(fixture("country-v1.mmdb"), &path).unwrap();
        let first = open(&path, Kind::Country).unwrap();
        let again = open(&path, Kind::Country).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        let staged = folder.path().join("country.mmdb.new");
        std::fs::copy(fixture("country-v2.mmdb"), &staged).unwrap();
        std::fs::rename(&staged, &path).unwrap();
        let replaced = open(&path, Kind::Country).unwrap();
        assert!(!Arc::ptr_eq(&first, &replaced));
        assert_eq!(country_of(&first, "198.51.100.7"), "DE");
        assert_eq!(country_of(&replaced, "198.51.100.7"), "FR");
    }
}
