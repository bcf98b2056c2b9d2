package io.ptune.model;

import com.fasterxml.jackson.databind.JsonNode;
import io.ptune.ModelFormatException;
import io.ptune.internal.JsonFiles;
import io.ptune.nativebridge.ModelSpecOptions;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/** Typed reads of config.json fields with messages that name the field (every family's parser). */
final class ConfigFields {
    private ConfigFields() {}

    static int requiredInt(JsonNode root, String field) {
        Integer value = optionalInt(root, field, null);
        if (value == null) {
            throw new ModelFormatException("field '" + field + "' is required but missing");
        }
        return value;
    }

    /** The first of {@code fields} present (configs of one family spell some fields two ways). */
    static int requiredInt(JsonNode root, String field, String alias) {
        Integer value = optionalInt(root, field, null);
        if (value == null) {
            value = optionalInt(root, alias, null);
        }
        if (value == null) {
            throw new ModelFormatException("field '" + field + "' (or '" + alias + "') is required but missing");
        }
        return value;
    }

    static Integer optionalInt(JsonNode root, String field, Integer fallback) {
        JsonNode node = root.get(field);
        if (JsonFiles.isAbsent(node)) {
            return fallback;
        }
        if (!node.isIntegralNumber() || !node.canConvertToInt()) {
            throw new ModelFormatException("field '" + field + "' must be an integer, got " + node);
        }
        return node.intValue();
    }

    static Long optionalLong(JsonNode root, String field) {
        JsonNode node = root.get(field);
        if (JsonFiles.isAbsent(node)) {
            return null;
        }
        if (!node.isIntegralNumber() || !node.canConvertToLong()) {
            throw new ModelFormatException("field '" + field + "' must be an integer, got " + node);
        }
        return node.longValue();
    }

    /** A token id field; negative values (some converted configs write -1 for "none") are null. */
    static Long optionalTokenId(JsonNode root, String field) {
        Long id = optionalLong(root, field);
        return id != null && id < 0 ? null : id;
    }

    static double optionalDouble(JsonNode root, String field, double fallback) {
        JsonNode node = root.get(field);
        if (JsonFiles.isAbsent(node)) {
            return fallback;
        }
        if (!node.isNumber()) {
            throw new ModelFormatException("field '" + field + "' must be a number, got " + node);
        }
        return node.doubleValue();
    }

    static boolean optionalBoolean(JsonNode root, String field, boolean fallback) {
        JsonNode node = root.get(field);
        if (JsonFiles.isAbsent(node)) {
            return fallback;
        }
        if (!node.isBoolean()) {
            throw new ModelFormatException("field '" + field + "' must be true or false, got " + node);
        }
        return node.booleanValue();
    }

    static String optionalString(JsonNode root, String field, String fallback) {
        JsonNode node = root.get(field);
        if (JsonFiles.isAbsent(node)) {
            return fallback;
        }
        if (!node.isTextual()) {
            throw new ModelFormatException("field '" + field + "' must be a string, got " + node);
        }
        return node.textValue().toLowerCase(Locale.ROOT);
    }

    /**
     * Reads {@code eos_token_id} in either form config files use: one int or a list of ints.
     * Also used for {@code generation_config.json}.
     */
    static List<Long> tokenIdList(JsonNode root, String field) {
        JsonNode node = root.get(field);
        if (JsonFiles.isAbsent(node)) {
            return List.of();
        }
        List<Long> ids = new ArrayList<>();
        if (node.isArray()) {
            for (JsonNode item : node) {
                if (!item.isIntegralNumber() || !item.canConvertToLong()) {
                    throw new ModelFormatException("field '" + field
                            + "' must be an integer or a list of integers, got " + node);
                }
                ids.add(item.asLong());
            }
        } else if (node.isIntegralNumber() && node.canConvertToLong()) {
            ids.add(node.asLong());
        } else {
            throw new ModelFormatException("field '" + field
                    + "' must be an integer or a list of integers, got " + node);
        }
        return ids;
    }

    static void requirePositive(String field, int value) {
        if (value <= 0) {
            throw new ModelFormatException("field '" + field + "' must be positive, got " + value);
        }
    }

    static void requirePositive(String field, double value) {
        if (!(value > 0) || !Double.isFinite(value)) {
            throw new ModelFormatException("field '" + field + "' must be a positive number, got " + value);
        }
    }

    /** Requires {@code hidden = heads x headDim}. */
    static void requireHeadsDivide(String hiddenField, int hidden, String headsField, int heads) {
        if (heads <= 0 || hidden % heads != 0) {
            throw new ModelFormatException(hiddenField + " (" + hidden + ") must be divisible by " + headsField
                    + " (" + heads + ")");
        }
    }

    /** A token id narrowed to int; one past int's range cannot be in any vocabulary. */
    static Integer intTokenId(String field, Long id) {
        if (id != null && (id < Integer.MIN_VALUE || id > Integer.MAX_VALUE)) {
            throw new ModelFormatException("field '" + field + "' = " + id + " is outside any vocabulary");
        }
        return id == null ? null : id.intValue();
    }

    static void checkTokenId(String field, Long id, int vocabSize) {
        if (id != null && (id < 0 || id >= vocabSize)) {
            throw new ModelFormatException("field '" + field + "' = " + id
                    + " is outside the vocabulary [0, " + vocabSize + ")");
        }
    }

    /** Checks bos / eos / pad ids against the vocabulary; returns the eos list, copied. */
    static List<Long> checkSpecialIds(Integer bos, List<Long> eos, Long pad, int vocabSize) {
        checkTokenId("bos_token_id", bos == null ? null : bos.longValue(), vocabSize);
        checkTokenId("pad_token_id", pad, vocabSize);
        List<Long> copy = List.copyOf(eos == null ? List.of() : eos);
        for (Long id : copy) {
            checkTokenId("eos_token_id", id, vocabSize);
        }
        return copy;
    }

    /** The MLP activation config.json names (hidden_act / activation_function). */
    static ModelSpecOptions.Activation activation(String field, String name) {
        return switch (name) {
            case "gelu" -> ModelSpecOptions.Activation.GELU_EXACT;
            case "gelu_new", "gelu_pytorch_tanh", "gelu_fast" -> ModelSpecOptions.Activation.GELU_TANH;
            case "relu" -> ModelSpecOptions.Activation.RELU;
            case "silu", "swish" -> ModelSpecOptions.Activation.SILU;
            default -> throw new ModelFormatException("field '" + field + "' = '" + name + "' is not supported; ptune"
                    + " implements gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, relu and silu");
        };
    }
}
