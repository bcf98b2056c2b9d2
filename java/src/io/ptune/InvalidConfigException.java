package io.ptune;

/**
 * A configuration value is out of range or missing. The message starts with the field name so a
 * user can find the flag or builder method to change.
 */
public class InvalidConfigException extends PtuneException {
    private static final long serialVersionUID = 1L;

    private final String field;

    /**
     * @param field the configuration field (builder method / JSON key) that is wrong
     * @param problem what is wrong with it and what to do, e.g. "must be > 0, got -3"
     */
    public InvalidConfigException(String field, String problem) {
        super(field + ": " + problem);
        this.field = field;
    }

    /** The name of the offending field. */
    public String field() {
        return field;
    }
}
