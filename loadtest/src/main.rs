//! The load and correctness tool. Its scenarios are tracked in its own issue; until they land this
//! binary only tells so, rather than pretending to measure anything.

fn main() {
    eprintln!("loadtest: no scenarios yet; see the README's roadmap");
    std::process::exit(2);
}
