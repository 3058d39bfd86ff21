-- Who may add the user to groups (docs/decisions/024): a copy of the `group_adds` setting their
-- UserObject holds, so creating a group asks only the people who restrict adds. Written by that
-- object alone, in the order that never leaves 'everyone' here while the object says 'contacts'.
-- NULL: not known here (every account from before this column) — the Worker asks the object, as
-- it did for everyone before, and the object fills the column in. A routing-only directory row
-- (an account kept in its jurisdiction's store, 021) leaves it NULL: the store's row is read.
ALTER TABLE accounts ADD COLUMN group_adds TEXT CHECK (group_adds IN ('everyone', 'contacts'));
