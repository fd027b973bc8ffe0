pub const ENTRY_SIZE: usize = 20;
