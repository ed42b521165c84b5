pub fn open(_s:&crate::CandidateSpec)->karte_core::Result<Box<dyn crate::Candidate>>{Err(crate::candidate::unreachable_error(&_s.source))}
