"""Commands of snp-dispatch (slots, holds, bookings) live here as units of work."""
