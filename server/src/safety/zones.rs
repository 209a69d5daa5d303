//! Which country an IANA time zone belongs to, from the tz database's own tables (`zone.tab`,
//! its links, and `iso3166.tab`), vendored under `data/` as published (public domain). Used to
//! find a clinic's crisis resources when it never said which country it is in. Pure data.

use std::collections::HashMap;

const ZONE_TAB: &str = include_str!("data/zone.tab");
const LINKS_TAB: &str = include_str!("data/links.tab");
const ISO3166_TAB: &str = include_str!("data/iso3166.tab");

/// Zone to country, and the ISO 3166-1 alpha-2 codes the tz database knows.
#[derive(Debug, Clone)]
pub struct ZoneCountries {
    zones: HashMap<String, String>,
    links: HashMap<String, String>,
    countries: HashMap<String, String>,
}

fn rows(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| line.split(['\t', ' ']).filter(|f| !f.is_empty()).collect())
}

impl Default for ZoneCountries {
    fn default() -> Self {
        Self::vendored()
    }
}

impl ZoneCountries {
    /// The tables vendored with the binary.
    pub fn vendored() -> Self {
        let zones = rows(ZONE_TAB)
            .filter_map(|f| Some((f.get(2)?.to_string(), f.first()?.to_string())))
            .collect();
        let links = rows(LINKS_TAB)
            .filter_map(|f| Some((f.get(1)?.to_string(), f.first()?.to_string())))
            .collect();
        let countries = ISO3166_TAB
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| line.split_once('\t'))
            .map(|(code, name)| (code.to_owned(), name.trim().to_owned()))
            .collect();
        Self {
            zones,
            links,
            countries,
        }
    }

    /// The country of `zone`, following links (`US/Central` is `America/Chicago`); none for
    /// zones of no country (`UTC`, `Etc/GMT+5`) and unknown names.
    pub fn country_of(&self, zone: &str) -> Option<&str> {
        let mut name = zone;
        // Links point at zones, rarely at other links; a few steps are plenty.
        for _ in 0..4 {
            if let Some(country) = self.zones.get(name) {
                return Some(country);
            }
            name = self.links.get(name)?;
        }
        None
    }

    /// Whether `code` (upper case) is an ISO 3166-1 alpha-2 code.
    pub fn is_country(&self, code: &str) -> bool {
        self.countries.contains_key(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_map_to_their_countries_through_links_too() {
        let table = ZoneCountries::vendored();
        assert_eq!(table.country_of("America/Chicago"), Some("US"));
        assert_eq!(table.country_of("US/Central"), Some("US"));
        assert_eq!(table.country_of("America/Toronto"), Some("CA"));
        assert_eq!(table.country_of("Europe/London"), Some("GB"));
        assert_eq!(table.country_of("Europe/Dublin"), Some("IE"));
        assert_eq!(table.country_of("Australia/Lord_Howe"), Some("AU"));
        assert_eq!(table.country_of("Pacific/Chatham"), Some("NZ"));
        assert_eq!(table.country_of("Europe/Amsterdam"), Some("NL"));
        assert_eq!(table.country_of("Asia/Calcutta"), Some("IN"));
        assert_eq!(table.country_of("Europe/Kiev"), Some("UA"));
        assert_eq!(table.country_of("UTC"), None);
        assert_eq!(table.country_of("Etc/GMT+5"), None);
        assert_eq!(table.country_of("Mars/Olympus"), None);
    }

    #[test]
    fn every_zone_chrono_tz_accepts_is_either_mapped_or_countryless() {
        let table = ZoneCountries::vendored();
        let unmapped: Vec<&str> = chrono_tz::TZ_VARIANTS
            .iter()
            .map(|tz| tz.name())
            .filter(|name| table.country_of(name).is_none())
            .filter(|name| {
                !(name.starts_with("Etc/")
                    || name.contains("GMT")
                    || name.contains("UTC")
                    || name.contains("UCT")
                    || ["Universal", "Zulu", "Factory", "Greenwich"].contains(name)
                    || name.len() <= 7)
            })
            .collect();
        // Old-style names (CET, EST5EDT, ...) aside, every named place has a country.
        assert!(unmapped.len() < 15, "{unmapped:?}");
        assert!(table.is_country("US") && table.is_country("FR") && !table.is_country("XX"));
    }
}
