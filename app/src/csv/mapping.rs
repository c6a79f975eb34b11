//! Mapping a file's own columns onto Code Import's: suggestions from the header's names (in
//! any case, spacing and punctuation, with synonyms in English, German, French and Spanish, and
//! units in brackets ignored) and, where names say nothing, from the look of the values.

use serde::{Deserialize, Serialize};

use super::{Column, Record, RecordReader, COLUMNS};

/// What each of a file's columns, in file order, is staged as (`None`: ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ColumnMapping {
    pub fields: Vec<Option<Column>>,
}

impl ColumnMapping {
    /// Whether some column is staged as the code (a mapping without one stages nothing).
    pub fn has_code(&self) -> bool {
        self.fields.contains(&Some(Column::Code))
    }

    /// The column staged as `column` twice, if one is.
    pub fn duplicate(&self) -> Option<Column> {
        COLUMNS.into_iter().find(|c| self.fields.iter().filter(|f| **f == Some(*c)).count() > 1)
    }
}

/// The key files with the same header share (one mapping decision per key): the header's
/// names trimmed and lower-cased, in order.
pub fn layout_key(header: &[String]) -> String {
    header.iter().map(|h| h.trim().to_lowercase()).collect::<Vec<_>>().join("\u{1f}")
}

/// A header name as suggestions compare it: units in brackets dropped, accents folded, only
/// letters and digits kept, lower case (`Points (pts)` → `points`, `N° de série` → `ndeserie`).
pub fn normalise(name: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    for c in name.chars() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ if depth > 0 => {}
            _ => {
                for lower in c.to_lowercase() {
                    let folded = match lower {
                        'à' | 'á' | 'â' | 'ã' | 'å' => 'a',
                        'ä' => {
                            out.push('a');
                            'e'
                        }
                        'ç' => 'c',
                        'è' | 'é' | 'ê' | 'ë' => 'e',
                        'ì' | 'í' | 'î' | 'ï' => 'i',
                        'ñ' => 'n',
                        'ò' | 'ó' | 'ô' | 'õ' => 'o',
                        'ö' => {
                            out.push('o');
                            'e'
                        }
                        'ù' | 'ú' | 'û' => 'u',
                        'ü' => {
                            out.push('u');
                            'e'
                        }
                        'ß' => {
                            out.push('s');
                            's'
                        }
                        other => other,
                    };
                    if folded.is_alphanumeric() {
                        out.push(folded);
                    }
                }
            }
        }
    }
    out
}

/// Names (as [`normalise`] leaves them) that mean each column.
const SYNONYMS: [(Column, &[&str]); 8] = [
    (
        Column::Code,
        &[
            "code",
            "codes",
            "voucher",
            "vouchercode",
            "vouchercodes",
            "voucherno",
            "coupon",
            "couponcode",
            "promo",
            "promocode",
            "promotioncode",
            "promotionalcode",
            "pin",
            "pincode",
            "giftcode",
            "giftcardcode",
            "redemptioncode",
            "activationcode",
            "discountcode",
            "gutschein",
            "gutscheincode",
            "aktionscode",
            "rabattcode",
            "codepromo",
            "codepromotionnel",
            "bon",
            "bondereduction",
            "codigo",
            "codigopromocional",
            "cupon",
            "codigodecupon",
            "codigodescuento",
            "vale",
        ],
    ),
    (
        Column::Serial,
        &[
            "serial",
            "serialno",
            "serialnr",
            "serialnumber",
            "serialnum",
            "sn",
            "seriennummer",
            "seriennr",
            "numerodeserie",
            "ndeserie",
            "nodeserie",
            "numserie",
            "serie",
            "nserie",
        ],
    ),
    (
        Column::Sku,
        &[
            "sku",
            "productsku",
            "itemsku",
            "productcode",
            "itemcode",
            "productid",
            "articlenumber",
            "artikelnummer",
            "artikelnr",
            "artnr",
            "artikel",
            "reference",
            "ref",
            "referenceproduit",
            "codeproduit",
            "codigoproducto",
            "referencia",
        ],
    ),
    (
        Column::Points,
        &[
            "points",
            "point",
            "pts",
            "loyaltypoints",
            "rewardpoints",
            "bonuspoints",
            "punkte",
            "treuepunkte",
            "bonuspunkte",
            "pointsfidelite",
            "puntos",
            "puntosdefidelidad",
        ],
    ),
    (
        Column::SkuName,
        &[
            "skuname",
            "productname",
            "itemname",
            "product",
            "name",
            "description",
            "produktname",
            "produkt",
            "bezeichnung",
            "artikelname",
            "nomduproduit",
            "nomproduit",
            "libelle",
            "designation",
            "produit",
            "nombredelproducto",
            "nombreproducto",
            "producto",
            "descripcion",
            "nombre",
        ],
    ),
    (
        Column::BatchCode,
        &[
            "batchcode",
            "batch",
            "batchid",
            "batchno",
            "batchnumber",
            "lot",
            "lotno",
            "lotnumber",
            "charge",
            "chargennummer",
            "charge",
            "numerodelot",
            "lote",
            "numerodelote",
            "campaign",
            "campaigncode",
        ],
    ),
    (
        Column::Price,
        &[
            "price",
            "amount",
            "value",
            "facevalue",
            "cost",
            "preis",
            "betrag",
            "wert",
            "nennwert",
            "prix",
            "montant",
            "valeur",
            "precio",
            "importe",
            "valor",
        ],
    ),
    (
        Column::MerchantId,
        &[
            "merchantid",
            "merchant",
            "merchantuuid",
            "retailerid",
            "haendlerid",
            "haendler",
            "idcommercant",
            "commercant",
            "idcomerciante",
            "comerciante",
        ],
    ),
];

/// The column a header name means, by name alone.
pub fn column_named(name: &str) -> Option<Column> {
    let name = normalise(name);
    if name.is_empty() {
        return None;
    }
    SYNONYMS.iter().find(|(_, names)| names.contains(&name.as_str())).map(|(column, _)| *column)
}

fn is_uuid(value: &str) -> bool {
    uuid::Uuid::try_parse(value.trim()).is_ok()
}

/// Digits with at most one point or comma, maybe a sign: whether integer (`Some(true)`),
/// decimal (`Some(false)`), or not a number.
fn number_shape(value: &str) -> Option<bool> {
    let digits = value.trim().strip_prefix(['+', '-']).unwrap_or(value.trim());
    let mut points = 0;
    for b in digits.bytes() {
        match b {
            b'0'..=b'9' => {}
            b'.' | b',' => points += 1,
            _ => return None,
        }
    }
    (digits.bytes().any(|b| b.is_ascii_digit()) && points <= 1).then_some(points == 0)
}

/// Suggestions for a file with `header` whose first data rows are `rows` (fields in file
/// order): by name first, then, for the columns whose names say nothing, by the look of their
/// non-empty values (all UUIDs: `merchant_id`; all whole numbers: `points`, else `price`;
/// decimals: `price`). No column is suggested twice.
pub fn suggest(header: &[String], rows: &[Vec<String>]) -> ColumnMapping {
    let mut fields: Vec<Option<Column>> = vec![None; header.len()];
    let taken = |fields: &[Option<Column>], column: Column| fields.contains(&Some(column));
    for (i, name) in header.iter().enumerate() {
        if let Some(column) = Column::from_header(name).or_else(|| column_named(name)) {
            if !taken(&fields, column) {
                fields[i] = Some(column);
            }
        }
    }
    for i in 0..header.len() {
        if fields[i].is_some() {
            continue;
        }
        let values: Vec<&str> =
            rows.iter().filter_map(|r| r.get(i)).map(|v| v.trim()).filter(|v| !v.is_empty()).collect();
        if values.is_empty() {
            continue;
        }
        let shape = if values.iter().all(|v| is_uuid(v)) {
            vec![Column::MerchantId]
        } else if values.iter().all(|v| number_shape(v) == Some(true)) {
            vec![Column::Points, Column::Price]
        } else if values.iter().all(|v| number_shape(v).is_some()) {
            vec![Column::Price]
        } else {
            Vec::new()
        };
        fields[i] = shape.into_iter().find(|c| !taken(&fields, *c));
    }
    ColumnMapping { fields }
}

/// The header and up to `most` data rows of a file's first lines (its report's preview),
/// parsed with `delimiter`; a `sep=` line, when the file has one, is dropped first.
pub fn sample(lines: &[String], delimiter: u8, sep_line: bool, most: usize) -> (Vec<String>, Vec<Vec<String>>) {
    let text = lines.iter().skip(usize::from(sep_line)).cloned().collect::<Vec<_>>().join("\n");
    let mut reader = RecordReader::new(delimiter);
    let mut records: Vec<Vec<String>> = Vec::new();
    let mut each = |r: Record<'_>| {
        if r.problem.is_none() {
            records.push(r.fields().map(|f| String::from_utf8_lossy(f).trim().to_owned()).collect());
        }
    };
    reader.feed(text.as_bytes(), &mut each);
    reader.finish(&mut each);
    let mut records = records.into_iter();
    let header = records.next().unwrap_or_default();
    (header, records.take(most).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use Column::*;

    fn names(header: &str) -> Vec<String> {
        header.split(',').map(str::to_owned).collect()
    }

    #[test]
    fn real_world_headers_are_suggested_by_name() {
        let table: [(&str, Option<Column>); 48] = [
            ("Voucher Code", Some(Code)),
            ("Product SKU", Some(Sku)),
            ("Loyalty Points", Some(Points)),
            ("Batch", Some(BatchCode)),
            ("Batch ID", Some(BatchCode)),
            ("batch_id", Some(BatchCode)),
            ("COUPON", Some(Code)),
            ("Promo-Code", Some(Code)),
            ("PIN", Some(Code)),
            ("Gift Card Code", Some(Code)),
            ("  code  ", Some(Code)),
            ("Serial No.", Some(Serial)),
            ("Serial Number", Some(Serial)),
            ("S/N", Some(Serial)),
            ("Points (pts)", Some(Points)),
            ("Price (EUR)", Some(Price)),
            ("Amount €", Some(Price)),
            ("Face Value [USD]", Some(Price)),
            ("Product Name", Some(SkuName)),
            ("Description", Some(SkuName)),
            ("Merchant ID", Some(MerchantId)),
            ("merchant-uuid", Some(MerchantId)),
            ("Lot Number", Some(BatchCode)),
            // German
            ("Gutscheincode", Some(Code)),
            ("Gutschein-Code", Some(Code)),
            ("Seriennummer", Some(Serial)),
            ("Artikelnummer", Some(Sku)),
            ("Punkte", Some(Points)),
            ("Treuepunkte", Some(Points)),
            ("Bezeichnung", Some(SkuName)),
            ("Preis", Some(Price)),
            ("Händler-ID", Some(MerchantId)),
            ("Chargennummer", Some(BatchCode)),
            // French
            ("Code promo", Some(Code)),
            ("Numéro de série", Some(Serial)),
            ("N° de série", Some(Serial)),
            ("Référence", Some(Sku)),
            ("Nom du produit", Some(SkuName)),
            ("Prix (€)", Some(Price)),
            ("Numéro de lot", Some(BatchCode)),
            ("Points fidélité", Some(Points)),
            // Spanish
            ("Código", Some(Code)),
            ("Cupón", Some(Code)),
            ("Código promocional", Some(Code)),
            ("Puntos", Some(Points)),
            ("Precio", Some(Price)),
            ("Lote", Some(BatchCode)),
            // Says nothing known
            ("Colour", None),
        ];
        let wrong: Vec<String> = table
            .iter()
            .filter(|(name, want)| Column::from_header(name).or_else(|| column_named(name)) != *want)
            .map(|(name, want)| format!("{name:?} → {:?}, wanted {want:?}", column_named(name)))
            .collect();
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn the_voucher_file_is_mapped_whole() {
        let mapping = suggest(&names("Voucher Code,Product SKU,Loyalty Points,Batch"), &[]);
        assert_eq!(mapping.fields, vec![Some(Code), Some(Sku), Some(Points), Some(BatchCode)]);
        assert!(mapping.has_code() && mapping.duplicate().is_none());
    }

    #[test]
    fn names_that_say_nothing_are_suggested_from_their_values() {
        let header = names("Voucher,Shop,Qty,Cost,Note");
        let rows = vec![
            names("A1,7faab812-e179-48c2-9707-0d8a9b2f84ea,10,9.50,hello"),
            names("A2,7faab812-e179-48c2-9707-0d8a9b2f84ea,20,12,"),
        ];
        assert_eq!(suggest(&header, &rows).fields, vec![Some(Code), Some(MerchantId), Some(Points), Some(Price), None]);
        // Two whole-number columns: the first is points, the next price.
        let header = names("code,a,b");
        assert_eq!(suggest(&header, &[names("X,1,2")]).fields, vec![Some(Code), Some(Points), Some(Price)]);
    }

    #[test]
    fn no_column_is_suggested_twice() {
        let mapping = suggest(&names("Code,Voucher,Points,Loyalty Points"), &[]);
        assert_eq!(mapping.fields, vec![Some(Code), None, Some(Points), None]);
    }

    #[test]
    fn files_with_the_same_header_share_a_layout_whatever_the_spacing_and_case() {
        assert_eq!(layout_key(&names("Voucher Code, Batch")), layout_key(&names(" voucher code,BATCH ")));
        assert_ne!(layout_key(&names("Voucher Code,Batch")), layout_key(&names("Batch,Voucher Code")));
    }

    #[test]
    fn the_sample_is_the_header_and_first_rows_of_the_preview() {
        let lines: Vec<String> =
            ["sep=;", "Voucher;Name", "A1;\"x;y\"", "A2;z"].iter().map(|s| s.to_string()).collect();
        let (header, rows) = sample(&lines, b';', true, 5);
        assert_eq!(header, names("Voucher,Name"));
        assert_eq!(rows, vec![vec!["A1".to_owned(), "x;y".to_owned()], names("A2,z")]);
    }
}
