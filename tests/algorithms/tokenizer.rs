//! Task tokenizers: trained vocabularies, round trips, end markers, and the saved file.

use algorithms::tasks::arith::{Arith, ArithConfig};
use algorithms::tasks::style::{Style, StyleConfig, ADJECTIVES, ADVERBS, NOUNS, PLACES, VERBS};
use algorithms::tasks::Task;
use algorithms::tokenizer::{train_tokenizer, Response, TaskTokenizer, TOKENIZER_FILE};

use crate::Scratch;

#[test]
fn arith_tokenizer_is_character_level_and_round_trips() {
    let task = Arith::new(ArithConfig::default()).unwrap();
    let dir = Scratch::new("arith-tokenizer");
    let tok = train_tokenizer(&task, dir.path()).unwrap();
    assert_eq!((tok.pad_id(), tok.eos_id()), (0, 1));
    assert_eq!(tok.vocab_size(), 3 + 12, "<pad> <eos> <unk>, ten digits, + and =");
    let prompt = tok.encode("37+45=").unwrap();
    assert_eq!(prompt.len(), 6);
    assert_eq!(prompt[0], tok.encode("3").unwrap()[0]);
    let response = tok.encode_response("82").unwrap();
    assert_eq!(response.len(), 3);
    assert_eq!(response[2], tok.eos_id());
    assert_eq!(tok.decode_response(&response).unwrap(), Response { text: "82".into(), finished: true });
    // Generation may run out of room before the end marker, or go on after it.
    assert_eq!(tok.decode_response(&response[..2]).unwrap(), Response { text: "82".into(), finished: false });
    let mut longer = response.clone();
    longer.extend(tok.encode("99").unwrap());
    assert_eq!(tok.decode_response(&longer).unwrap(), Response { text: "82".into(), finished: true });
    for text in task.eval_prompts().iter().chain(task.train_prompts()).take(3000) {
        let ids = tok.encode(text).unwrap();
        assert_eq!(ids.len(), text.len());
        assert_eq!(tok.decode_response(&ids).unwrap().text, *text);
    }
    assert!(tok.encode("3*4=").is_err(), "text outside the vocabulary is an error");
}

#[test]
fn style_tokenizer_is_word_level_and_covers_the_grammar() {
    let task = Style::new(StyleConfig::default()).unwrap();
    let dir = Scratch::new("style-tokenizer");
    let tok = train_tokenizer(&task, dir.path()).unwrap();
    let words = NOUNS.len()
        + VERBS.len()
        + ADJECTIVES.len()
        + ADVERBS.len()
        + ["the", "in", "park", "by", "river", "under", "tree", "at", "home", ".", ":"].len();
    assert_eq!(tok.vocab_size(), 3 + words);
    for place in PLACES {
        assert_eq!(tok.encode(place).unwrap().len(), place.split(' ').count());
    }
    for text in task.eval_prompts().iter().chain(task.sft_corpus().iter().map(|e| &e.response)).take(2000) {
        let ids = tok.encode_response(text).unwrap();
        assert_eq!(ids.len(), text.split(' ').count() + 1);
        assert_eq!(tok.decode_response(&ids).unwrap(), Response { text: text.clone(), finished: true });
    }
}

#[test]
fn saved_tokenizer_loads_as_a_hugging_face_file_and_training_is_deterministic() {
    let task = Arith::new(ArithConfig::default()).unwrap();
    let (a, b) = (Scratch::new("tokenizer-a"), Scratch::new("tokenizer-b"));
    let tok = train_tokenizer(&task, a.path()).unwrap();
    train_tokenizer(&task, b.path()).unwrap();
    let file = a.path().join(TOKENIZER_FILE);
    assert_eq!(tok.path(), file);
    assert_eq!(std::fs::read(&file).unwrap(), std::fs::read(b.path().join(TOKENIZER_FILE)).unwrap());
    let hf = models::tokenizer::Tokenizer::from_file(&file).unwrap();
    assert_eq!(hf.encode("12+7=").unwrap(), tok.encode("12+7=").unwrap());
    assert_eq!(hf.token_to_id("<eos>"), Some(tok.eos_id()));
    assert_eq!(TaskTokenizer::load(&file).unwrap().vocab_size(), tok.vocab_size());
}
