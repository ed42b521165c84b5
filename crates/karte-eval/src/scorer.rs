pub fn open_local(_s:&crate::CandidateSpec)->karte_core::Result<Box<dyn crate::canary::Scorer>>{Err(karte_core::Error::new(karte_core::Code::EvalScoringUnsupported,"x"))}
