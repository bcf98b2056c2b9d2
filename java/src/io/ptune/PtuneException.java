package io.ptune;

/**
 * Base of every error ptune reports: a message a user can act on (what went wrong, which file or
 * field, what to do). Unchecked, because most callers cannot recover and a library that forces
 * {@code throws} clauses on every call only gets wrapped again.
 *
 * <p>Failures of the native core reach Java as this type too (the bridge wraps the C++ message).
 */
public class PtuneException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public PtuneException(String message) {
        super(message);
    }

    public PtuneException(String message, Throwable cause) {
        super(message, cause);
    }
}
