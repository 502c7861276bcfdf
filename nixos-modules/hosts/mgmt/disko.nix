# Disk layout nixos-anywhere partitions and formats at install time (disko): GPT on the one disk
# of a Hetzner Cloud CX22, booting with GRUB on BIOS (the 1 MiB EF02 partition) or UEFI (the ESP),
# ext4 root. Check the device name with `lsblk` in the rescue system before installing.
{
  disko.devices.disk.main = {
    type = "disk";
    device = "/dev/sda";
    content = {
      type = "gpt";
      partitions = {
        bios = {
          size = "1M";
          type = "EF02";
        };
        esp = {
          size = "512M";
          type = "EF00";
          content = {
            type = "filesystem";
            format = "vfat";
            mountpoint = "/boot";
            mountOptions = [ "umask=0077" ];
          };
        };
        root = {
          size = "100%";
          content = {
            type = "filesystem";
            format = "ext4";
            mountpoint = "/";
          };
        };
      };
    };
  };
}
