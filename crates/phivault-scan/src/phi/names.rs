//! Word lists for the name detector: common US given names and surnames
//! (a few hundred each, from general knowledge of the most frequent names;
//! they raise confidence, they do not decide alone), and capitalised words
//! that are never a name in clinical text (facilities, places, section
//! headings, months), which veto a candidate.

/// Common given names, lower case, sorted (binary search).
#[rustfmt::skip]
pub(crate) static FIRST: &[&str] = &[
    "aaron", "abigail", "adam", "adrian", "aiden", "alan", "albert", "alex", "alexander", "alexis",
    "alice", "alicia", "allison", "alyssa", "amanda", "amber", "amy", "ana", "andrea", "andrew",
    "angela", "anna", "anne", "anthony", "antonio", "april", "arthur", "ashley", "austin",
    "barbara", "benjamin", "betty", "beverly", "bill", "billy", "bobby", "brandon", "brenda",
    "brian", "brittany", "bruce", "bryan", "caleb", "cameron", "carl", "carlos", "carol",
    "caroline", "catherine", "charles", "charlotte", "cheryl", "chloe", "christian", "christina",
    "christine", "christopher", "cynthia", "daniel", "danielle", "david", "deborah", "debra",
    "denise", "dennis", "diana", "diane", "donald", "donna", "doris", "dorothy", "douglas",
    "dylan", "edward", "elijah", "elizabeth", "ella", "emily", "emma", "eric", "ethan", "eugene",
    "evelyn", "frances", "frank", "gabriel", "gary", "george", "gerald", "gloria", "grace",
    "gregory", "hannah", "harold", "heather", "helen", "henry", "isabella", "jack", "jacob",
    "jacqueline", "james", "jamie", "janet", "janice", "jason", "jean", "jeffrey", "jennifer",
    "jeremy", "jerry", "jesse", "jessica", "joan", "joe", "john", "johnny", "jonathan", "jordan",
    "jose", "joseph", "joshua", "joyce", "juan", "judith", "judy", "julia", "julie", "justin",
    "karen", "katherine", "kathleen", "kathryn", "kayla", "keith", "kelly", "kenneth", "kevin",
    "kimberly", "kyle", "larry", "laura", "lauren", "lawrence", "leah", "linda", "lisa", "logan",
    "lori", "louis", "lucas", "luis", "madison", "margaret", "maria", "marie", "marilyn", "mark",
    "martha", "mary", "mason", "matthew", "megan", "melissa", "mia", "michael", "michelle",
    "natalie", "nathan", "nicholas", "nicole", "noah", "olivia", "pamela", "patricia", "patrick",
    "paul", "peter", "philip", "rachel", "ralph", "randy", "raymond", "rebecca", "richard",
    "robert", "roger", "ronald", "rose", "roy", "russell", "ruth", "ryan", "samantha", "samuel",
    "sandra", "sara", "sarah", "scott", "sean", "sharon", "shirley", "sophia", "stephanie",
    "stephen", "steven", "susan", "teresa", "terry", "theresa", "thomas", "timothy", "tyler",
    "victoria", "vincent", "virginia", "walter", "wayne", "william", "willie", "zachary",
];

/// Common surnames, lower case, sorted (binary search).
#[rustfmt::skip]
pub(crate) static LAST: &[&str] = &[
    "adams", "aguilar", "alexander", "allen", "alvarez", "anderson", "armstrong", "bailey",
    "baker", "barnes", "bell", "bennett", "black", "boyd", "bradley", "brooks", "brown", "bryant",
    "burns", "butler", "campbell", "carter", "castillo", "castro", "chavez", "chen", "clark",
    "cole", "coleman", "collins", "cook", "cooper", "cox", "crawford", "cruz", "cunningham",
    "daniels", "davis", "diaz", "dixon", "edwards", "ellis", "evans", "ferguson", "fisher",
    "flores", "ford", "foster", "freeman", "garcia", "gibson", "gomez", "gonzales", "gonzalez",
    "gordon", "graham", "grant", "gray", "green", "griffin", "gutierrez", "hall", "hamilton",
    "harris", "harrison", "hayes", "henderson", "hernandez", "herrera", "hill", "holmes", "howard",
    "hughes", "hunt", "jackson", "james", "jenkins", "jimenez", "johnson", "jones", "jordan",
    "kelly", "kennedy", "kim", "king", "lee", "lewis", "long", "lopez", "marshall", "martin",
    "martinez", "mason", "mcdonald", "medina", "mendoza", "meyer", "miller", "mills", "mitchell",
    "moore", "morales", "moreno", "morgan", "morris", "murphy", "murray", "myers", "nelson",
    "nguyen", "nichols", "olson", "ortiz", "owens", "palmer", "parker", "patel", "patterson",
    "perez", "perry", "peterson", "phillips", "powell", "price", "ramirez", "ramos", "reed",
    "reyes", "reynolds", "rice", "richardson", "rivera", "roberts", "robinson", "rodriguez",
    "rogers", "ross", "ruiz", "russell", "sanchez", "sanders", "scott", "shaw", "simmons",
    "simpson", "smith", "snyder", "spencer", "stephens", "stevens", "stewart", "stone", "sullivan",
    "taylor", "thomas", "thompson", "torres", "tran", "tucker", "turner", "vasquez", "wagner",
    "walker", "wallace", "ward", "warren", "washington", "watson", "weaver", "webb", "wells",
    "west", "white", "williams", "wilson", "wood", "woods", "wright", "young",
];

/// Capitalised words that veto a name candidate when either word of it is
/// one of these: places, facilities, headings, units, months and days.
#[rustfmt::skip]
pub(crate) static STOP: &[&str] = &[
    "account", "address", "admission", "admitted", "allergies", "am", "and", "assessment",
    "august", "ave", "avenue", "blood", "blvd", "call", "care", "center", "centre", "chart",
    "chief", "city", "clinic", "complaint", "county", "date", "dear", "december", "department",
    "diabetes", "diagnosis", "discharge", "disease", "drive", "east", "email", "emergency", "exam",
    "family", "february", "floor", "follow", "friday", "general", "group", "health", "history",
    "hospital", "inc", "insurance", "invoice", "january", "july", "lab", "laboratory", "lake",
    "lane", "llc", "march", "may", "medical", "memorial", "monday", "mount", "name", "new",
    "north", "note", "notes", "november", "october", "of", "order", "patient", "pharmacy", "phone",
    "physical", "plan", "please", "pm", "pressure", "progress", "record", "regards", "report",
    "river", "road", "room", "saint", "saturday", "september", "services", "sincerely", "south",
    "st", "street", "summary", "sunday", "team", "thanks", "the", "thursday", "total", "tuesday",
    "type", "unit", "university", "valley", "wednesday", "york",
];

fn has(list: &[&str], w: &str) -> bool {
    if w.len() > 24 || !w.is_ascii() {
        return false;
    }
    let lower = w.to_ascii_lowercase();
    list.binary_search(&lower.as_str()).is_ok()
}

/// Whether `w` (any case) is a common given name.
pub(crate) fn is_first(w: &str) -> bool {
    has(FIRST, w)
}

/// Whether `w` (any case) is a common surname.
pub(crate) fn is_last(w: &str) -> bool {
    has(LAST, w)
}

/// Whether `w` (any case) vetoes a name candidate.
pub(crate) fn is_stop(w: &str) -> bool {
    has(STOP, w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_sorted_lower_case_and_unique() {
        for list in [FIRST, LAST, STOP] {
            for w in list.windows(2) {
                assert!(w[0] < w[1], "{} !< {}", w[0], w[1]);
            }
            for w in list {
                assert_eq!(*w, w.to_ascii_lowercase());
            }
        }
        assert!(is_first("John") && is_last("SMITH") && is_stop("Hospital"));
        // A word in both a name list and the stop list could never be found.
        for w in STOP {
            assert!(!is_first(w) && !is_last(w), "{w}");
        }
    }
}
