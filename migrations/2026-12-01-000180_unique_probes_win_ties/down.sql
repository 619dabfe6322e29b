-- The rebuilt constraints are the same as before (only their age changed), so
-- going back drops the one index that was added.
DROP INDEX programs_probe;
