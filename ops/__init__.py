"""Operations entry points: what ``make run`` does."""
