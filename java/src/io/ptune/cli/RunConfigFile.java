package io.ptune.cli;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import io.ptune.InvalidConfigException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import picocli.CommandLine.IDefaultValueProvider;
import picocli.CommandLine.Model.ArgSpec;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.ParameterException;

/**
 * Run configs: a YAML or JSON mapping of a command's flags to values ({@code --config FILE}). Keys
 * are spelled as the long flags without {@code --} ({@code virtual-tokens: 20}); a flag given on
 * the command line overrides the file; an unknown key is an error with a "did you mean" hint.
 * Relative paths in the file are resolved against the file's folder. Lists ({@code [a, b]}) become
 * the comma-separated values the flags take; booleans switch flags on or off.
 */
final class RunConfigFile {
    /** Options that are not settings of a run: never read from a file, never written to one. */
    static final Set<String> NOT_SETTINGS = Set.of("help", "version", "config");

    private static final ObjectMapper YAML = new ObjectMapper(new YAMLFactory());

    private RunConfigFile() {}

    /**
     * Supplies the values of a command's {@code --config} file as the defaults of the options not
     * given on the command line (picocli asks after parsing them, so the command line wins and a
     * required flag may come from the file). The whole file is checked on the first question:
     * unknown keys and values of the wrong type fail naming the file and key.
     */
    static final class Defaults implements IDefaultValueProvider {
        @Override
        public String defaultValue(ArgSpec arg) {
            if (!(arg instanceof OptionSpec option) || !(arg.command().userObject() instanceof CliCommand command)
                    || command.config == null || !command.configHoldsOwnFlags()) {
                return null;
            }
            String key = key(option);
            if (key == null || NOT_SETTINGS.contains(key)) {
                return null;
            }
            try {
                Map<String, String> values = command.configValues();
                if (values == null) {
                    values = values(arg.command(), command.config);
                    command.configValues(values);
                }
                return values.get(key);
            } catch (InvalidConfigException e) {
                throw new ParameterException(arg.command().commandLine(), e.getMessage().substring("config: ".length())
                        .transform(m -> "--config " + m), e);
            }
        }
    }

    /**
     * The values {@code file} gives the options of {@code spec}, as command-line strings.
     *
     * @throws InvalidConfigException naming the file and key when the file cannot be read, is not a
     *     mapping, names an unknown key or holds a value of the wrong type
     */
    static Map<String, String> values(CommandSpec spec, Path file) {
        ObjectNode root = read(file);
        Map<String, OptionSpec> options = optionsByKey(spec);
        Map<String, String> values = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = root.fields(); it.hasNext();) {
            Map.Entry<String, JsonNode> entry = it.next();
            String key = entry.getKey();
            OptionSpec option = options.get(key);
            if (option == null) {
                throw new InvalidConfigException("config", file + ": unknown key '" + key + "'" + hint(key, options)
                        + "; keys are the long flags of 'ptune " + spec.name() + "' without '--' (see 'ptune "
                        + spec.name() + " --help')");
            }
            if (!entry.getValue().isNull()) {
                values.put(key, convert(option, entry.getValue(), file, key));
            }
        }
        return values;
    }

    /** The options a file may set, by key (the longest {@code --} name without the dashes). */
    static Map<String, OptionSpec> optionsByKey(CommandSpec spec) {
        Map<String, OptionSpec> byKey = new LinkedHashMap<>();
        for (OptionSpec option : spec.options()) {
            String key = key(option);
            if (key != null && !NOT_SETTINGS.contains(key)) {
                byKey.put(key, option);
            }
        }
        return byKey;
    }

    /** {@code --virtual-tokens} -> {@code virtual-tokens}; null for an option with no long name. */
    static String key(OptionSpec option) {
        String longest = option.longestName();
        return longest.startsWith("--") ? longest.substring(2) : null;
    }

    static ObjectNode read(Path file) {
        JsonNode root;
        try {
            // YAML is a superset of JSON, so one parser reads both.
            root = YAML.readTree(Files.readString(file));
        } catch (NoSuchFileException e) {
            throw new InvalidConfigException("config", file + " does not exist; give a YAML or JSON run config");
        } catch (JacksonException e) {
            throw new InvalidConfigException("config", file + " is not valid YAML or JSON: "
                    + e.getOriginalMessage().lines().findFirst().orElse("") + locationOf(e));
        } catch (IOException e) {
            throw new InvalidConfigException("config", "cannot read " + file + ": " + e.getMessage());
        }
        if (root == null || root.isMissingNode() || root.isNull()) {
            throw new InvalidConfigException("config", file + " is empty; a run config maps flags to values, e.g."
                    + " 'virtual-tokens: 20'");
        }
        if (!(root instanceof ObjectNode object)) {
            throw new InvalidConfigException("config", file + " holds a " + root.getNodeType().name()
                    .toLowerCase(Locale.ROOT) + ", not a mapping of flags to values (e.g. 'virtual-tokens: 20')");
        }
        return object;
    }

    private static String locationOf(JacksonException e) {
        return e.getLocation() == null ? "" : " (line " + e.getLocation().getLineNr() + ")";
    }

    /** The value as the command line would give it, checked against the option's type. */
    private static String convert(OptionSpec option, JsonNode node, Path file, String key) {
        Class<?> type = option.type();
        String where = file + ": " + key;
        if (type == boolean.class || type == Boolean.class) {
            if (node.isBoolean()) {
                return Boolean.toString(node.booleanValue());
            }
            throw new InvalidConfigException("config", where + " is a switch: give true or false, not " + node);
        }
        if (option.isMultiValue()) {
            return multiValue(option, node, file, where);
        }
        if (node.isObject()) {
            throw new InvalidConfigException("config", where + " takes a single value or a list, not a mapping");
        }
        String text = text(node, where);
        try {
            if (type == Integer.class || type == int.class) {
                Integer.parseInt(text);
            } else if (type == Long.class || type == long.class) {
                Long.parseLong(text);
            } else if (type == Double.class || type == double.class) {
                Double.parseDouble(text);
            }
        } catch (NumberFormatException e) {
            throw new InvalidConfigException("config", where + " takes a " + (type == Double.class
                    || type == double.class ? "number" : "whole number") + ", not '" + text + "'");
        }
        if (type == Path.class) {
            return file.toAbsolutePath().getParent().resolve(text).normalize().toString();
        }
        if (type == String.class || Number.class.isAssignableFrom(type) || type.isPrimitive()) {
            return text;
        }
        throw new IllegalStateException("option " + option.longestName() + " of type " + type.getName()
                + " cannot be read from a run config");
    }

    /**
     * A flag that takes several values ({@code --adapters a=DIR,b=DIR}): a list of items, a comma
     * list, or a mapping (item {@code key=value}; for NAME=DIR flags the folders are resolved
     * against the file's folder like other paths).
     */
    private static String multiValue(OptionSpec option, JsonNode node, Path file, String where) {
        if (!",".equals(option.splitRegex())) {
            throw new IllegalStateException("option " + option.longestName() + " takes several values without a"
                    + " comma split; a run config cannot give them");
        }
        if (!node.isObject()) {
            return text(node, where);
        }
        boolean folders = option.paramLabel().endsWith("=DIR");
        List<String> items = new ArrayList<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = node.fields(); it.hasNext();) {
            Map.Entry<String, JsonNode> entry = it.next();
            if (entry.getValue().isContainerNode()) {
                throw new InvalidConfigException("config", where + "." + entry.getKey() + " takes a plain value");
            }
            String value = entry.getValue().asText();
            items.add(entry.getKey() + "=" + (folders
                    ? file.toAbsolutePath().getParent().resolve(value).normalize().toString() : value));
        }
        return String.join(",", items);
    }

    /** A scalar as written; a list as its items joined by commas. */
    private static String text(JsonNode node, String where) {
        if (node.isArray()) {
            List<String> items = new ArrayList<>();
            for (JsonNode item : node) {
                if (item.isContainerNode()) {
                    throw new InvalidConfigException("config", where + ": a list of plain values, not of lists or"
                            + " mappings");
                }
                items.add(item.asText());
            }
            return String.join(",", items);
        }
        return node.asText();
    }

    /** ", did you mean 'x'?" for the closest key, or nothing when none is close. */
    static String hint(String key, Map<String, ?> keys) {
        String normal = key.strip().toLowerCase(Locale.ROOT).replace('_', '-').replaceFirst("^-+", "");
        String best = null;
        int bestDistance = Integer.MAX_VALUE;
        for (String candidate : keys.keySet()) {
            int distance = distance(normal, candidate);
            if (distance < bestDistance) {
                best = candidate;
                bestDistance = distance;
            }
        }
        return best != null && bestDistance <= Math.max(2, normal.length() / 3) ? "; did you mean '" + best + "'?" : "";
    }

    /** Levenshtein distance. */
    private static int distance(String a, String b) {
        int[] previous = new int[b.length() + 1];
        int[] current = new int[b.length() + 1];
        for (int j = 0; j <= b.length(); j++) {
            previous[j] = j;
        }
        for (int i = 1; i <= a.length(); i++) {
            current[0] = i;
            for (int j = 1; j <= b.length(); j++) {
                int substitution = previous[j - 1] + (a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1);
                current[j] = Math.min(substitution, Math.min(previous[j], current[j - 1]) + 1);
            }
            int[] swap = previous;
            previous = current;
            current = swap;
        }
        return previous[b.length()];
    }
}
