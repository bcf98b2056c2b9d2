package io.ptune.classify;

import io.ptune.InvalidConfigException;
import java.util.Arrays;
import java.util.Locale;
import java.util.stream.Collectors;

/** The lower-case, dashed names by which the classification enums are written in flags and files. */
final class CliNames {
    private CliNames() {}

    static String of(Enum<?> value) {
        return value.name().toLowerCase(Locale.ROOT).replace('_', '-');
    }

    static <E extends Enum<E>> E parse(E[] values, String text, String field) {
        String wanted = text == null ? "" : text.trim().toLowerCase(Locale.ROOT).replace('_', '-');
        for (E value : values) {
            if (of(value).equals(wanted)) {
                return value;
            }
        }
        throw new InvalidConfigException(field, "'" + text + "' is not one of "
                + Arrays.stream(values).map(CliNames::of).collect(Collectors.joining(", ")));
    }
}
