package io.ptune.prompt;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.ptune.InvalidConfigException;
import io.ptune.internal.JsonFiles;
import java.nio.file.Path;
import java.util.Iterator;
import java.util.Objects;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * One named block of a composite prompt (e.g. base / domain / instance): its length, how it
 * starts, its own learning rate, and whether it is frozen (kept as it starts, e.g. a block reused
 * from another task with {@link PromptInit#FROM_ADAPTER}).
 *
 * <p>JSON form (a list of these is what {@code ptune train --blocks FILE} reads and what
 * {@code ptune_composite.json} stores):
 * <pre>{"name": "base", "num_virtual_tokens": 8, "init": "text:Tell a story", "learning_rate": 0.01, "frozen": false}</pre>
 * {@code init} takes the {@code --init} forms (random, vocab, text:..., labels:a,b,
 * from-adapter:DIR); {@code learning_rate} null or absent means the trainer's rate.
 *
 * @param name unique within the prompt: letters, digits, {@code _ - .}
 * @param numVirtualTokens the block's rows (> 0)
 * @param initialization how the block starts
 * @param learningRate the block's own peak learning rate, or null for the trainer's
 * @param frozen true to keep the block as it starts
 */
public record PromptBlock(String name, int numVirtualTokens, PromptInitSpec initialization, Double learningRate,
        boolean frozen) {

    private static final Pattern NAME = Pattern.compile("[A-Za-z0-9_.-]+");
    private static final Set<String> JSON_KEYS =
            Set.of("name", "num_virtual_tokens", "init", "learning_rate", "frozen");

    public PromptBlock {
        Objects.requireNonNull(initialization, "initialization");
        if (name == null || !NAME.matcher(name).matches()) {
            throw new InvalidConfigException("name", "block name '" + name + "' must be non-empty letters,"
                    + " digits, '_', '-' or '.'");
        }
        if (numVirtualTokens <= 0) {
            throw new InvalidConfigException("numVirtualTokens", "block '" + name + "' must have > 0 virtual"
                    + " tokens, got " + numVirtualTokens);
        }
        if (learningRate != null && (!(learningRate > 0) || !Double.isFinite(learningRate))) {
            throw new InvalidConfigException("learningRate", "block '" + name + "' learning rate must be a"
                    + " positive number (or null for the trainer's), got " + learningRate);
        }
    }

    /** A trainable block at the trainer's learning rate. */
    public static PromptBlock of(String name, int numVirtualTokens, PromptInitSpec initialization) {
        return new PromptBlock(name, numVirtualTokens, initialization, null, false);
    }

    /** This block with another learning rate (null = the trainer's). */
    public PromptBlock withLearningRate(Double rate) {
        return new PromptBlock(name, numVirtualTokens, initialization, rate, frozen);
    }

    /** This block, frozen or not. */
    public PromptBlock withFrozen(boolean isFrozen) {
        return new PromptBlock(name, numVirtualTokens, initialization, learningRate, isFrozen);
    }

    /** The JSON object described in the class comment. */
    public ObjectNode toJson() {
        ObjectNode json = JsonFiles.MAPPER.createObjectNode();
        json.put("name", name);
        json.put("num_virtual_tokens", numVirtualTokens);
        json.put("init", initialization.toSpecString());
        if (learningRate == null) {
            json.putNull("learning_rate");
        } else {
            json.put("learning_rate", learningRate);
        }
        json.put("frozen", frozen);
        return json;
    }

    /**
     * Reads the JSON form.
     *
     * @param where names the file and entry in errors, e.g. "blocks.json: block 2"
     * @param baseDir resolves a relative {@code from-adapter:} directory
     * @throws InvalidConfigException naming {@code where} and the key
     */
    public static PromptBlock fromJson(JsonNode json, String where, Path baseDir) {
        if (json == null || !json.isObject()) {
            throw new InvalidConfigException("blocks", where + " must be a JSON object like {\"name\": \"base\","
                    + " \"num_virtual_tokens\": 8}");
        }
        for (Iterator<String> it = json.fieldNames(); it.hasNext(); ) {
            String key = it.next();
            if (!JSON_KEYS.contains(key)) {
                throw new InvalidConfigException("blocks", where + " has unknown key '" + key + "'; a block has "
                        + "name, num_virtual_tokens, init, learning_rate, frozen");
            }
        }
        JsonNode name = json.get("name");
        if (JsonFiles.isAbsent(name) || !name.isTextual()) {
            throw new InvalidConfigException("blocks", where + ": 'name' is required and must be a string");
        }
        JsonNode tokens = json.get("num_virtual_tokens");
        if (JsonFiles.isAbsent(tokens) || !tokens.isIntegralNumber() || !tokens.canConvertToInt()) {
            throw new InvalidConfigException("blocks", where + ": 'num_virtual_tokens' is required and must be"
                    + " an integer");
        }
        JsonNode init = json.get("init");
        PromptInitSpec spec;
        if (JsonFiles.isAbsent(init)) {
            spec = PromptInitSpec.random();
        } else if (!init.isTextual()) {
            throw new InvalidConfigException("blocks", where + ": 'init' must be a string like \"random\" or"
                    + " \"text:...\"");
        } else {
            try {
                spec = PromptInitSpec.parse(init.asText(), baseDir);
            } catch (IllegalArgumentException e) {
                throw new InvalidConfigException("blocks", where + ": " + e.getMessage());
            } catch (InvalidConfigException e) {
                throw new InvalidConfigException("blocks", where + ": " + e.getMessage());
            }
        }
        JsonNode rate = json.get("learning_rate");
        if (!JsonFiles.isAbsent(rate) && !rate.isNumber()) {
            throw new InvalidConfigException("blocks", where + ": 'learning_rate' must be a number or null");
        }
        JsonNode frozen = json.get("frozen");
        if (!JsonFiles.isAbsent(frozen) && !frozen.isBoolean()) {
            throw new InvalidConfigException("blocks", where + ": 'frozen' must be true or false");
        }
        try {
            return new PromptBlock(name.asText(), tokens.intValue(), spec,
                    JsonFiles.isAbsent(rate) ? null : rate.doubleValue(),
                    !JsonFiles.isAbsent(frozen) && frozen.booleanValue());
        } catch (InvalidConfigException e) {
            throw new InvalidConfigException("blocks", where + ": " + e.getMessage());
        }
    }
}
