pub mod drafts;
