package io.ptune.cli;

import io.ptune.train.TrainingConfig;
import io.ptune.train.TrainingSetting;
import java.util.Map;
import java.util.function.Function;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;

/**
 * The command-line flags of the training settings, generated from {@link TrainingSetting} (their
 * one definition): one {@code --key} option per setting, of the setting's value type, with its
 * help text. {@link #config} turns what was given into a {@link TrainingConfig}.
 */
final class SettingOptions {
    /** Builder field names of the settings mapped to their flags (for {@link CliCommand#flagNames}). */
    static final Map<String, String> FLAGS = Stream.of(TrainingSetting.values())
            .collect(Collectors.toUnmodifiableMap(TrainingSetting::field, TrainingSetting::flag));

    private SettingOptions() {}

    /** Adds the settings' options to {@code spec} (once; picocli may inject a spec twice). */
    static void addTo(CommandSpec spec) {
        for (TrainingSetting setting : TrainingSetting.values()) {
            if (spec.findOption(setting.flag()) == null) {
                spec.addOption(OptionSpec.builder(setting.flag())
                        .paramLabel(setting.paramLabel())
                        .type(setting.valueType())
                        .description(setting.description())
                        .build());
            }
        }
    }

    /** The value given for {@code setting} (on the command line or in a run config), or null. */
    static <T> T given(CommandSpec spec, TrainingSetting setting, Class<T> type) {
        return type.cast(spec.findOption(setting.flag()).getValue());
    }

    /** A builder with every given setting applied; the rest keep their defaults. */
    static TrainingConfig.Builder builder(CommandSpec spec) {
        TrainingConfig.Builder builder = TrainingConfig.builder();
        for (TrainingSetting setting : TrainingSetting.values()) {
            Object value = spec.findOption(setting.flag()).getValue();
            if (value != null) {
                setting.apply(builder, value);
            }
        }
        return builder;
    }

    /** {@link #builder} built. */
    static TrainingConfig config(CommandSpec spec) {
        return builder(spec).build();
    }

    /** The settings that were given, by setting. */
    static Map<TrainingSetting, Object> givenValues(CommandSpec spec) {
        return Stream.of(TrainingSetting.values()).filter(s -> spec.findOption(s.flag()).getValue() != null)
                .collect(Collectors.toMap(Function.identity(), s -> spec.findOption(s.flag()).getValue()));
    }
}
