package io.ptune.serve;

import io.ptune.PtuneException;

/** No adapter of that name is loaded in the {@link AdapterRegistry} (never added, or removed). */
public final class UnknownAdapterException extends PtuneException {
    private final String name;

    public UnknownAdapterException(String name, java.util.Collection<String> loaded) {
        super("no adapter named '" + name + "' is loaded (loaded: " + (loaded.isEmpty() ? "none"
                : String.join(", ", new java.util.TreeSet<>(loaded))) + ")");
        this.name = name;
    }

    /** The name that was asked for. */
    public String name() {
        return name;
    }
}
