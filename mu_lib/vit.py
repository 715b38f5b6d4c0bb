"""Vision transformers with embed() = class-token embedding; registered on import."""
