//! The conversations of the prompt benchmark: a scripted 30-turn trip-planning chat, and a
//! 100-turn one (the same turns over again, numbered) that fills an 8K window several times.

use serde_json::{Value, json};

/// A deterministic article of about `bytes` bytes of HTML, ending with `marker`.
pub fn article(title: &str, bytes: usize, marker: &str) -> String {
    const TOPICS: [&str; 8] = [
        "trams",
        "tiles",
        "viewpoints",
        "bakeries",
        "river ferries",
        "museums",
        "markets",
        "hills",
    ];
    let mut html = format!(
        "<!doctype html><html><head><title>{title}</title></head><body><article><h1>{title}</h1>\n"
    );
    let mut section = 0;
    while html.len() + 200 < bytes {
        let topic = TOPICS[section % TOPICS.len()];
        html.push_str(&format!("<h2>Section {}: {topic}</h2>\n", section + 1));
        for p in 0..2 {
            html.push_str(&format!(
                "<p>Paragraph {p} of section {s} covers {topic} in some depth. Visitors often ask \
                 about opening hours, prices and the best time of day; fact number {n} is that \
                 locals recommend arriving early, bringing water, and checking the schedule \
                 posted at the entrance, because it changes with the seasons.</p>\n",
                s = section + 1,
                n = section * 2 + p + 1,
            ));
        }
        section += 1;
    }
    html.push_str(&format!(
        "<p>Last words: {marker}.</p></article></body></html>\n"
    ));
    html
}

/// One scripted user message and what its turn must do: `None` for a plain turn, else one real
/// tool call whose result contains the given text (empty: any result).
pub struct Line {
    pub text: String,
    pub expect: Option<&'static str>,
}

/// The scripted 30-turn trip-planning conversation: 17 plain turns and 13 tool turns on all four
/// servers, among them four fetches of ~8 KB pages.
pub fn script(article_url: &str, guide_url: &str) -> Vec<Line> {
    let plain = |t: &str| Line {
        text: t.to_string(),
        expect: None,
    };
    let call = |t: &str, name: &str, args: Value, expect: &'static str| Line {
        text: format!("{t} [[call {name} {args}]]"),
        expect: Some(expect),
    };
    let fetch = |url: &str| json!({"url": url, "max_length": 20000});
    vec![
        plain("Hi! I am planning a four-day trip to Lisbon next spring."),
        call(
            "Please remember that.",
            "memory__create_entities",
            json!({"entities": [{"name": "Lisbon trip", "entityType": "plan", "observations": ["next spring", "four days"]}]}),
            "Lisbon trip",
        ),
        plain("What should I pack for Lisbon in April?"),
        call(
            "Read this article for me.",
            "fetch__fetch",
            fetch(article_url),
            "END-OF-ARTICLE",
        ),
        plain("Summarise that article in three bullet points."),
        call(
            "Think it through step by step.",
            "thinking__sequentialthinking",
            json!({"thought": "List the neighbourhoods worth a day each.", "thoughtNumber": 1, "totalThoughts": 3, "nextThoughtNeeded": true}),
            "thoughtNumber",
        ),
        plain("Which neighbourhood would you start with?"),
        call(
            "What do you remember about me?",
            "memory__read_graph",
            json!({}),
            "Lisbon trip",
        ),
        plain("Good. How do I get from the airport to the centre?"),
        call(
            "Add the tram fares for two people.",
            "everything__get-sum",
            json!({"a": 3.1, "b": 3.1}),
            "6.2",
        ),
        plain("Is a day pass better value?"),
        call(
            "Now read the transport guide.",
            "fetch__fetch",
            fetch(guide_url),
            "END-OF-GUIDE",
        ),
        plain("Which of those passes fits a four-day stay?"),
        plain("And for a day trip to Sintra?"),
        call(
            "Remember that I prefer the day pass.",
            "memory__add_observations",
            json!({"observations": [{"entityName": "Lisbon trip", "contents": ["prefers the day pass"]}]}),
            "prefers the day pass",
        ),
        plain("Thanks. What about food: which dishes should I try?"),
        call(
            "Look up my trip and confirm the plan.",
            "memory__search_nodes",
            json!({"query": "Lisbon"}),
            "Lisbon trip",
        ),
        plain("Where can I find good pastel de nata?"),
        call(
            "Keep thinking about the itinerary.",
            "thinking__sequentialthinking",
            json!({"thought": "Day one: Alfama and the castle; day two: Belém.", "thoughtNumber": 2, "totalThoughts": 3, "nextThoughtNeeded": true}),
            "thoughtNumber",
        ),
        plain("That sounds good. What about day three?"),
        call(
            "Read the article again, I lost it.",
            "fetch__fetch",
            fetch(article_url),
            "END-OF-ARTICLE",
        ),
        plain("Which viewpoint from the article is best at sunset?"),
        plain("Is it safe to walk there at night?"),
        call(
            "What do you know about my trip so far?",
            "memory__read_graph",
            json!({}),
            "day pass",
        ),
        plain("Great. Any tips for rainy days?"),
        call(
            "Repeat my plan back to me.",
            "everything__echo",
            json!({"message": "Four days in Lisbon with a day pass, Alfama first."}),
            "Echo: Four days",
        ),
        plain("How much cash should I carry?"),
        call(
            "One last look at the transport guide.",
            "fetch__fetch",
            fetch(guide_url),
            "END-OF-GUIDE",
        ),
        plain("Thanks, that is all for now."),
        plain("Goodbye!"),
    ]
}

/// `turns` turns: the 30-turn script over and over, each message numbered so that every request
/// can be traced to its turn. Repeated tool turns call the same tools again; their results
/// differ (the memory graph grows), so only the first round's results are checked for content.
pub fn long_script(article_url: &str, guide_url: &str, turns: usize) -> Vec<Line> {
    let base = script(article_url, guide_url);
    (0..turns)
        .map(|i| {
            let line = &base[i % base.len()];
            Line {
                text: format!("Turn {}: {}", i + 1, line.text),
                expect: line.expect.map(|e| if i < base.len() { e } else { "" }),
            }
        })
        .collect()
}
