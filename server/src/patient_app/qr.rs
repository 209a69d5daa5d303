//! The link a patient invitation travels as, and its QR code (an SVG rendered here, so the
//! console needs no script to draw it). The code rides in the URL fragment, which a browser
//! never sends: it stays out of server and proxy logs.

use base64::Engine as _;
use qrcode::QrCode;
use qrcode::render::svg;

/// The app's enrolment link for an invitation code.
pub fn join_link(public_url: &str, code: &str) -> String {
    format!("{}/app/#/join/{code}", public_url.trim_end_matches('/'))
}

/// The QR code of `text` as an SVG `data:` URI (for an `img`, which the console's content
/// security policy admits), or `None` if the text is too long to encode.
pub fn svg_data_uri(text: &str) -> Option<String> {
    let code = QrCode::new(text.as_bytes()).ok()?;
    let image = code
        .render::<svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build();
    Some(format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(image)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_travels_in_the_fragment_and_the_qr_is_an_svg() {
        let link = join_link("https://c.example.org/", "7KQ2M-XC9TD");
        assert_eq!(link, "https://c.example.org/app/#/join/7KQ2M-XC9TD");
        let uri = svg_data_uri(&link).unwrap();
        let svg = base64::engine::general_purpose::STANDARD
            .decode(uri.trim_start_matches("data:image/svg+xml;base64,"))
            .unwrap();
        assert!(String::from_utf8(svg).unwrap().contains("<svg"));
    }
}
