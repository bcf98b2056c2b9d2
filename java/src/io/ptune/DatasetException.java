package io.ptune;

/**
 * A dataset file is missing, empty or malformed; the message names the file and the row.
 */
public class DatasetException extends PtuneException {
    private static final long serialVersionUID = 1L;

    public DatasetException(String message) {
        super(message);
    }

    public DatasetException(String message, Throwable cause) {
        super(message, cause);
    }
}
